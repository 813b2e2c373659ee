#include "bench/targets.h"

#include <netdb.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace bench {

absl::StatusOr<Endpoint> ResolveEndpoint(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("not host:port: ", host_port));
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  Endpoint endpoint;
  std::memcpy(&endpoint.address, found->ai_addr, found->ai_addrlen);
  endpoint.address_len = found->ai_addrlen;
  endpoint.name = host_port;
  freeaddrinfo(found);
  return endpoint;
}

void Targets::Add(const Endpoint& endpoint) {
  absl::MutexLock lock(&mu_);
  endpoints_.push_back(endpoint);
}

bool Targets::Remove(const std::string& name) {
  absl::MutexLock lock(&mu_);
  const size_t before = endpoints_.size();
  std::erase_if(endpoints_, [&](const Endpoint& e) { return e.name == name; });
  return endpoints_.size() != before;
}

std::vector<std::string> Targets::Names() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  for (const Endpoint& e : endpoints_) names.push_back(e.name);
  return names;
}

bool Targets::Pick(Endpoint* out, bool random) {
  absl::MutexLock lock(&mu_);
  if (endpoints_.empty()) return false;
  *out = endpoints_[(random ? rng_() : next_++) % endpoints_.size()];
  return true;
}

}  // namespace bench
