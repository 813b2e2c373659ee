// The accepting side of a reactor.
//
// Each reactor has its own SO_REUSEPORT listening socket, and the kernel
// spreads incoming connections across them. We chose that over one acceptor
// thread handing fds to reactors because a connection is then born on the
// thread that owns it for life: no cross-thread hand-off per connection, no
// acceptor bottleneck, and nothing to re-balance.
#pragma once

#include <cstdint>

#include "gateway/poller.h"

namespace gateway {

class Reactor;

// Loop-thread only; owned by its Reactor. Owns the listening fd.
class Listener final : public PollHandler {
 public:
  Listener(Reactor* reactor, int listen_fd);
  ~Listener() override;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int fd() const { return fd_; }
  absl::Status Register();             // adds the fd to the poller
  absl::Status Reregister();           // after a trigger mode switch
  // Accepts up to the reactor's accept budget.
  void AcceptSome();
  // Reopens the spare fd if shedding spent it and fds have been freed since.
  void RefillSpare();

 private:
  void OnReady(uint32_t ready) override { AcceptSome(); }
  enum class ShedResult { kShed, kBacklogEmpty, kNoFd };
  // EMFILE/ENFILE: closes the spare fd to accept one waiting client and close
  // it at once (the client sees EOF, not a hang), then takes the spare back.
  // Another thread may take the freed number first; then the spare stays
  // empty until RefillSpare() succeeds, and the caller backs off instead.
  ShedResult ShedOne();

  Reactor* const reactor_;
  const int fd_;
  int spare_fd_;
};

}  // namespace gateway
