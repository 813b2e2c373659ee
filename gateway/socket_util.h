// Socket helpers: address parsing, listening sockets, peer formatting.
// Thread-compatible free functions.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gateway {

// An IPv4 or IPv6 socket address, small enough to keep per connection.
union SocketAddress {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

// Parses "host:port" or "[v6]:port"; host may be a name ("localhost") or
// empty / "*" for any address. Port 0 asks for an ephemeral port.
absl::StatusOr<SocketAddress> ParseListenAddress(absl::string_view address);

// "ip:port", or "[ip]:port" for IPv6.
std::string FormatAddress(const SocketAddress& address);

// Opens `count` non-blocking listening sockets on one address, each with
// SO_REUSEPORT so the kernel spreads new connections across them. Fails with
// a clear message if another process is listening there already, even one
// that also uses SO_REUSEPORT (which would otherwise silently share the port).
absl::StatusOr<std::vector<int>> OpenReusePortListeners(const SocketAddress& address, int count, int backlog);

// The port a bound socket listens on.
int LocalPort(int fd);

}  // namespace gateway
