// The accepting side of a reactor.
//
// Each reactor has its own SO_REUSEPORT listening socket, and the kernel
// spreads incoming connections across them. We chose that over one acceptor
// thread handing fds to reactors because a connection is then born on the
// thread that owns it for life: no cross-thread hand-off per connection, no
// acceptor bottleneck, and nothing to re-balance.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "gateway/event_loop.h"
#include "gateway/reactor_stats.h"
#include "gateway/socket_util.h"

namespace gateway {

// Loop-thread only. Implemented by the reactor that owns the listener.
class ListenerHost {
 public:
  virtual ~ListenerHost() = default;
  // A connection was accepted: admit it (or close it at once).
  virtual void Accepted(int fd, const SocketAddress& peer) = 0;
  // The accept budget ran out with connections maybe still queued: accept
  // more after this turn's events.
  virtual void AcceptLater() = 0;
  // accept() failed for want of fds: admit no more connections than are
  // open now for a moment (renewed while the failures go on).
  virtual void OutOfFds() = 0;
  // Out of fds (or kernel memory) with nothing to shed with: stop accepting
  // for a moment rather than spin on a listener that stays readable.
  virtual void PauseAccepting() = 0;
};

// Loop-thread only; owned by its Reactor. Owns the listening fd.
class Listener final : public PollHandler {
 public:
  Listener(EventLoop* loop, ListenerHost* host, ReactorStats* stats, int accept_budget, int listen_fd);
  ~Listener() override;
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  int fd() const { return fd_; }
  absl::Status Register();    // adds the fd to the poller (at start, and after an IO-model switch)
  absl::Status Reregister();  // after a trigger mode switch, or a pause
  // Keeps the registration but reports nothing (a paused listener).
  absl::Status Mute();
  // Accepts up to the accept budget.
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

  EventLoop* const loop_;
  ListenerHost* const host_;
  ReactorStats* const stats_;
  const int accept_budget_;
  const int fd_;
  int spare_fd_;
};

}  // namespace gateway
