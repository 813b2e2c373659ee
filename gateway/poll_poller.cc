#include "gateway/poll_poller.h"

#include <poll.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"

namespace gateway {

void PollPoller::Set(int slot, int fd, PollHandler* handler, uint32_t interest) {
  short events = 0;
  // POLLRDHUP only with read interest, as in epoll: level-triggered, a FIN
  // on a connection that is not reading would wake every poll().
  if (interest & kReadable) events |= POLLIN | POLLRDHUP;
  if (interest & kWritable) events |= POLLOUT;
  // Interest 0 (a muted listener, a paused connection) must report nothing,
  // not even POLLHUP/POLLERR, which poll() reports unasked: a negative fd is
  // skipped by poll() entirely.
  fds_[slot].fd = interest == 0 ? ~fd : fd;
  fds_[slot].events = events;
  fds_[slot].revents = 0;
  handlers_[slot] = handler;
}

absl::Status PollPoller::Add(int fd, PollHandler* handler, uint32_t interest, FdRole /*role*/) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("poll: bad fd ", fd));
  int slot = SlotOf(fd);
  // An fd already here was closed behind our back and its number reused:
  // the new registration replaces the stale one.
  if (slot < 0) {
    if (static_cast<size_t>(fd) >= slot_of_.size()) slot_of_.resize(static_cast<size_t>(fd) + 1, -1);
    slot = static_cast<int>(fds_.size());
    fds_.push_back(pollfd{});
    handlers_.push_back(nullptr);
    slot_of_[fd] = slot;
  }
  Set(slot, fd, handler, interest);
  return absl::OkStatus();
}

absl::Status PollPoller::Modify(int fd, PollHandler* handler, uint32_t interest) {
  const int slot = SlotOf(fd);
  if (slot < 0) return absl::NotFoundError(absl::StrCat("poll: fd ", fd, " is not registered"));
  Set(slot, fd, handler, interest);
  return absl::OkStatus();
}

void PollPoller::RemoveSlot(int slot) {
  const int fd = fds_[slot].fd < 0 ? ~fds_[slot].fd : fds_[slot].fd;
  slot_of_[fd] = -1;
  const int last = static_cast<int>(fds_.size()) - 1;
  if (slot != last) {
    fds_[slot] = fds_[last];
    handlers_[slot] = handlers_[last];
    const int moved = fds_[slot].fd < 0 ? ~fds_[slot].fd : fds_[slot].fd;
    slot_of_[moved] = slot;
  }
  fds_.pop_back();
  handlers_.pop_back();
}

void PollPoller::Forget(int fd) {
  if (const int slot = SlotOf(fd); slot >= 0) RemoveSlot(slot);
}

void PollPoller::Close(int fd) {
  Forget(fd);
  Poller::Close(fd);
}

Poller::Leftovers PollPoller::Release(int fd) {
  Forget(fd);
  return Poller::Release(fd);
}

int PollPoller::Wait(int timeout_ms, std::vector<Event>* events) {
  events->clear();
  const int n = poll(fds_.data(), fds_.size(), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    DieErrno("poll");  // EFAULT/EINVAL/ENOMEM: nothing to recover
  }
  int seen = 0;
  for (int slot = 0; slot < static_cast<int>(fds_.size()) && seen < n;) {
    const short e = fds_[slot].revents;
    if (e == 0) {
      ++slot;
      continue;
    }
    ++seen;
    if (e & POLLNVAL) {
      // Closed without Close() (the listener's fd, by its destructor). The
      // last slot moves here; its revents are from this poll() too.
      RemoveSlot(slot);
      continue;
    }
    uint32_t ready = 0;
    if (e & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) ready |= kReadable;
    if (e & (POLLOUT | POLLHUP | POLLERR)) ready |= kWritable;
    if (e & (POLLRDHUP | POLLHUP | POLLERR)) ready |= kHangup;
    events->push_back(Event{handlers_[slot], ready});
    ++slot;
  }
  return static_cast<int>(events->size());
}

}  // namespace gateway
