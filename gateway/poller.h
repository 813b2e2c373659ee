// The I/O readiness seam: register fds with an interest set and wait for
// events. EpollPoller, level- or edge-triggered, is the implementation.
#pragma once

#include <sys/epoll.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "gateway/types.h"

namespace gateway {

// Receives readiness for one fd. Loop-thread only.
class PollHandler {
 public:
  virtual ~PollHandler() = default;
  // `ready` is a mask of Poller::kReadable / kWritable / kHangup. Hang-ups and
  // errors also set both of the others, so the next read or write surfaces
  // the cause.
  virtual void OnReady(uint32_t ready) = 0;
};

// Loop-thread only; owned by EventLoop. Does not own the fds.
class Poller {
 public:
  static constexpr uint32_t kReadable = 1;
  static constexpr uint32_t kWritable = 2;
  static constexpr uint32_t kHangup = 4;  // the peer shut down its side, or an error

  struct Event {
    PollHandler* handler;
    uint32_t ready;
  };

  virtual ~Poller() = default;
  virtual TriggerMode mode() const = 0;
  // Changes how later Add()/Modify() calls register fds; existing fds keep
  // their registration until modified.
  virtual void set_mode(TriggerMode mode) = 0;
  // `interest` is a mask of kReadable / kWritable.
  virtual absl::Status Add(int fd, PollHandler* handler, uint32_t interest) = 0;
  virtual absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) = 0;
  // Waits up to `timeout_ms` (-1: forever) and fills `events`. Returns the
  // number of events; 0 on timeout or EINTR.
  virtual int Wait(int timeout_ms, std::vector<Event>* events) = 0;
};

// Linux epoll, level- or edge-triggered.
class EpollPoller final : public Poller {
 public:
  // Aborts if epoll_create1 fails: nothing can work without it.
  explicit EpollPoller(TriggerMode mode);
  ~EpollPoller() override;

  TriggerMode mode() const override { return mode_; }
  void set_mode(TriggerMode mode) override { mode_ = mode; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;

 private:
  absl::Status Control(int op, int fd, PollHandler* handler, uint32_t interest);

  int epfd_;
  TriggerMode mode_;
  std::vector<struct epoll_event> raw_;
};

}  // namespace gateway
