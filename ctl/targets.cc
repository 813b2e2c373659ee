// Target lists: parsing and DNS resolution.
#include "ctl/targets.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gateway::ctl {
namespace {

struct HostPort {
  std::string host;  // brackets of "[v6]" removed
  int port = 0;
};

absl::StatusOr<HostPort> SplitHostPort(absl::string_view entry) {
  const size_t colon = entry.rfind(':');
  if (colon == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("target '", entry, "' is not host:port"));
  }
  HostPort out;
  absl::string_view host = entry.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("target '", entry, "': write an IPv6 address as [addr]:port"));
  }
  if (host.empty()) return absl::InvalidArgumentError(absl::StrCat("target '", entry, "' has no host"));
  out.host = std::string(host);
  const absl::string_view port = entry.substr(colon + 1);
  if (!absl::SimpleAtoi(port, &out.port) || out.port < 1 || out.port > 65535 ||
      port.find_first_not_of("0123456789") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("target '", entry, "': port must be 1..65535"));
  }
  return out;
}

void AddUnique(std::vector<Target>& targets, Target target) {
  if (std::find(targets.begin(), targets.end(), target) == targets.end()) targets.push_back(std::move(target));
}

std::string JoinHostPort(const std::string& host, int port) {
  return host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port) : absl::StrCat(host, ":", port);
}

}  // namespace

absl::StatusOr<std::vector<Target>> ParseTargets(absl::string_view list) {
  std::vector<Target> targets;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    entry = absl::StripAsciiWhitespace(entry);
    if (entry.empty()) return absl::InvalidArgumentError(absl::StrCat("--targets '", list, "' has an empty entry"));
    absl::StatusOr<HostPort> hp = SplitHostPort(entry);
    if (!hp.ok()) return hp.status();
    AddUnique(targets, Target{JoinHostPort(hp->host, hp->port)});
  }
  return targets;
}

absl::StatusOr<std::vector<Target>> ResolveTargets(absl::string_view name_port) {
  absl::StatusOr<HostPort> hp = SplitHostPort(absl::StripAsciiWhitespace(name_port));
  if (!hp.ok()) return hp.status();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address, not one per socket type
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(hp->host.c_str(), nullptr, &hints, &found);
  if (rc != 0) {
    return absl::NotFoundError(absl::StrCat("cannot resolve '", hp->host, "': ", gai_strerror(rc)));
  }
  std::vector<Target> targets;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (ai->ai_family == AF_INET) {
      addr = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      addr = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    }
    if (addr == nullptr || inet_ntop(ai->ai_family, addr, text, sizeof text) == nullptr) continue;
    AddUnique(targets, Target{JoinHostPort(text, hp->port)});
  }
  freeaddrinfo(found);
  if (targets.empty()) return absl::NotFoundError(absl::StrCat("'", hp->host, "' has no IPv4 or IPv6 address"));
  return targets;
}

}  // namespace gateway::ctl
