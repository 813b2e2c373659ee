#include "gateway/socket_util.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "gateway/host_port.h"

namespace gateway {
namespace {

absl::Status Errno(absl::string_view what, const std::string& address) {
  return absl::UnavailableError(absl::StrCat(what, " ", address, ": ", std::strerror(errno)));
}

socklen_t LengthOf(const SocketAddress& address) {
  return address.sa.sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// Returns a bound (not yet listening) socket, or an error naming `address`.
absl::StatusOr<int> BindSocket(const SocketAddress& address, bool reuse_port) {
  const std::string name = FormatAddress(address);
  const int fd = socket(address.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket for", name);
  const int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)) {
    absl::Status status = Errno("setsockopt on", name);
    close(fd);
    return status;
  }
  if (bind(fd, &address.sa, LengthOf(address)) != 0) {
    absl::Status status =
        errno == EADDRINUSE
            ? absl::UnavailableError(absl::StrCat("cannot listen on ", name, ": address already in use"))
            : Errno("bind", name);
    close(fd);
    return status;
  }
  return fd;
}

}  // namespace

absl::StatusOr<SocketAddress> ParseListenAddress(absl::string_view address) {
  absl::StatusOr<HostPort> split = SplitHostPort(address);
  if (!split.ok()) return split.status();
  const std::optional<int> port = ParsePort(split->port);
  if (!port) return absl::InvalidArgumentError(absl::StrCat("address '", address, "' has a bad port"));
  absl::string_view host = split->host;
  if (host.empty() || host == "*") host = "0.0.0.0";

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  const std::string host_str(host);
  const int rc = getaddrinfo(host_str.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "': ", gai_strerror(rc)));
  }
  SocketAddress parsed{};
  std::memcpy(&parsed, result->ai_addr, std::min<size_t>(result->ai_addrlen, sizeof parsed));
  freeaddrinfo(result);
  if (parsed.sa.sa_family == AF_INET) {
    parsed.v4.sin_port = htons(static_cast<uint16_t>(*port));
  } else if (parsed.sa.sa_family == AF_INET6) {
    parsed.v6.sin6_port = htons(static_cast<uint16_t>(*port));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "' is neither IPv4 nor IPv6"));
  }
  return parsed;
}

std::string FormatAddress(const SocketAddress& address) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (address.sa.sa_family == AF_INET6) {
    inet_ntop(AF_INET6, &address.v6.sin6_addr, ip, sizeof ip);
    return absl::StrCat("[", ip, "]:", ntohs(address.v6.sin6_port));
  }
  if (address.sa.sa_family != AF_INET) return "unix";  // an adopted socketpair
  inet_ntop(AF_INET, &address.v4.sin_addr, ip, sizeof ip);
  return absl::StrCat(ip, ":", ntohs(address.v4.sin_port));
}

int LocalPort(int fd) {
  SocketAddress local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, &local.sa, &len) != 0) return -1;
  return ntohs(local.sa.sa_family == AF_INET6 ? local.v6.sin6_port : local.v4.sin_port);
}

absl::StatusOr<std::vector<int>> OpenReusePortListeners(const SocketAddress& address, int count, int backlog) {
  SocketAddress bound = address;
  const int requested_port = ntohs(address.sa.sa_family == AF_INET6 ? address.v6.sin6_port : address.v4.sin_port);
  if (requested_port != 0) {
    // A socket without SO_REUSEPORT cannot bind beside a listener, whichever
    // options that listener has: the probe turns a shared port into an error.
    absl::StatusOr<int> probe = BindSocket(address, /*reuse_port=*/false);
    if (!probe.ok()) return probe.status();
    close(*probe);
  }
  std::vector<int> fds;
  auto fail = [&fds](absl::Status status) {
    for (int fd : fds) close(fd);
    return status;
  };
  for (int i = 0; i < count; ++i) {
    absl::StatusOr<int> fd = BindSocket(bound, /*reuse_port=*/true);
    if (!fd.ok()) return fail(fd.status());
    fds.push_back(*fd);
    if (listen(*fd, backlog) != 0) return fail(Errno("listen on", FormatAddress(bound)));
    if (i == 0) {  // an ephemeral port is chosen by the first bind; the rest join it
      const int port = LocalPort(*fd);
      if (bound.sa.sa_family == AF_INET6) {
        bound.v6.sin6_port = htons(static_cast<uint16_t>(port));
      } else {
        bound.v4.sin_port = htons(static_cast<uint16_t>(port));
      }
    }
  }
  return fds;
}

}  // namespace gateway
