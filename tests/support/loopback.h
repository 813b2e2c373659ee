// Sockets for tests that need a port of their own on 127.0.0.1: one that is
// listening (a fake server, or a port held so that the gateway finds it busy),
// or one that is only bound (held, so connecting to it is refused). Also
// RaiseFdLimit() for tests that open many sockets.
#pragma once

#include "absl/status/statusor.h"

namespace gateway::testing {

// A TCP socket bound to 127.0.0.1 on a port the kernel picked. Owns the fd
// (closed on destruction or by Close()). Thread-compatible.
class LoopbackSocket {
 public:
  LoopbackSocket() = default;
  ~LoopbackSocket();
  LoopbackSocket(LoopbackSocket&& other) noexcept;
  LoopbackSocket& operator=(LoopbackSocket&& other) noexcept;
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  int fd() const { return fd_; }
  int port() const { return port_; }
  void Close();

 private:
  friend absl::StatusOr<LoopbackSocket> BindLoopback();
  LoopbackSocket(int fd, int port) : fd_(fd), port_(port) {}

  int fd_ = -1;
  int port_ = 0;
};

// Binds a socket to 127.0.0.1:0 without listening: nobody else gets the port,
// and connecting to it is refused.
absl::StatusOr<LoopbackSocket> BindLoopback();
// Binds to 127.0.0.1:0 and listens with `backlog`.
absl::StatusOr<LoopbackSocket> ListenOnLoopback(int backlog = 16);

// Raises RLIMIT_NOFILE's soft limit to the hard limit (tests with many sockets).
void RaiseFdLimit();

}  // namespace gateway::testing
