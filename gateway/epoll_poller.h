// The epoll back-end, level- or edge-triggered.
#pragma once

#include <sys/epoll.h>

#include <vector>

#include "gateway/poller.h"

namespace gateway {

// Loop-thread only. Linux epoll, level- or edge-triggered (switchable: see set_mode).
class EpollPoller final : public Poller {
 public:
  // Aborts if epoll_create1 fails: nothing can work without it.
  explicit EpollPoller(TriggerMode mode);
  ~EpollPoller() override;

  IoModel model() const override { return IoModel::kEpoll; }
  TriggerMode mode() const override { return mode_; }
  void set_mode(TriggerMode mode) override { mode_ = mode; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;

 private:
  absl::Status Control(int op, int fd, PollHandler* handler, uint32_t interest);

  int epfd_;
  TriggerMode mode_;
  std::vector<struct epoll_event> raw_;
};

}  // namespace gateway
