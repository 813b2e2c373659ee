// The select(2) back-end: level-triggered, limited to fds below FD_SETSIZE.
#pragma once

#include <sys/select.h>

#include <vector>

#include "gateway/poller.h"

namespace gateway {

// Loop-thread only. Watches fds with select(2); refuses any fd >= FD_SETSIZE
// (1024) with FAILED_PRECONDITION, since FD_SET on one writes out of bounds.
class SelectPoller final : public Poller {
 public:
  SelectPoller();

  IoModel model() const override { return IoModel::kSelect; }
  TriggerMode mode() const override { return TriggerMode::kLevel; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;
  void Close(int fd) override;
  Leftovers Release(int fd) override;

  int registered() const { return count_; }  // fds watched (tests)

 private:
  absl::Status Set(int fd, PollHandler* handler, uint32_t interest);
  void Forget(int fd);
  // After EBADF: drops the fds closed without Close() (the listener's, closed
  // by its destructor). Returns how many.
  int PruneClosed();

  fd_set read_set_;
  fd_set write_set_;
  std::vector<PollHandler*> handlers_;  // indexed by fd, FD_SETSIZE entries
  int max_fd_ = -1;                     // highest fd registered, -1 if none
  int count_ = 0;
};

}  // namespace gateway
