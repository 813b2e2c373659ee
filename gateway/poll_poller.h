// The poll(2) back-end: level-triggered, no fd-number limit.
#pragma once

#include <poll.h>

#include <vector>

#include "gateway/poller.h"

namespace gateway {

// Loop-thread only. A dense pollfd array handed to poll(2) as is, with the
// handlers in a parallel array and an fd -> slot index.
class PollPoller final : public Poller {
 public:
  IoModel model() const override { return IoModel::kPoll; }
  TriggerMode mode() const override { return TriggerMode::kLevel; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;
  void Close(int fd) override;
  Leftovers Release(int fd) override;

  int registered() const { return static_cast<int>(fds_.size()); }  // fds watched (tests)

 private:
  int SlotOf(int fd) const { return fd >= 0 && static_cast<size_t>(fd) < slot_of_.size() ? slot_of_[fd] : -1; }
  void Set(int slot, int fd, PollHandler* handler, uint32_t interest);
  void RemoveSlot(int slot);  // swaps the last slot into its place
  void Forget(int fd);

  std::vector<pollfd> fds_;
  std::vector<PollHandler*> handlers_;  // parallel to fds_
  std::vector<int> slot_of_;            // indexed by fd; -1: not registered
};

}  // namespace gateway
