#include "gateway/select_poller.h"

#include <fcntl.h>
#include <sys/select.h>
#include <sys/time.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"

namespace gateway {
namespace {

absl::Status CheckFd(int fd) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("select: bad fd ", fd));
  if (fd >= FD_SETSIZE) {
    return absl::FailedPreconditionError(
        absl::StrCat("select cannot watch fd ", fd, ": fds must be below FD_SETSIZE (", FD_SETSIZE, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

SelectPoller::SelectPoller() : handlers_(FD_SETSIZE, nullptr) {
  FD_ZERO(&read_set_);
  FD_ZERO(&write_set_);
}

absl::Status SelectPoller::Set(int fd, PollHandler* handler, uint32_t interest) {
  if (interest & kReadable) {
    FD_SET(fd, &read_set_);
  } else {
    FD_CLR(fd, &read_set_);
  }
  if (interest & kWritable) {
    FD_SET(fd, &write_set_);
  } else {
    FD_CLR(fd, &write_set_);
  }
  if (handlers_[fd] == nullptr) ++count_;
  handlers_[fd] = handler;
  if (fd > max_fd_) max_fd_ = fd;
  return absl::OkStatus();
}

absl::Status SelectPoller::Add(int fd, PollHandler* handler, uint32_t interest, FdRole /*role*/) {
  if (absl::Status ok = CheckFd(fd); !ok.ok()) return ok;
  // An fd already here was closed behind our back and its number reused:
  // the new registration replaces the stale one.
  return Set(fd, handler, interest);
}

absl::Status SelectPoller::Modify(int fd, PollHandler* handler, uint32_t interest) {
  if (absl::Status ok = CheckFd(fd); !ok.ok()) return ok;
  if (handlers_[fd] == nullptr) return absl::NotFoundError(absl::StrCat("select: fd ", fd, " is not registered"));
  return Set(fd, handler, interest);
}

void SelectPoller::Forget(int fd) {
  if (fd < 0 || fd >= FD_SETSIZE || handlers_[fd] == nullptr) return;
  FD_CLR(fd, &read_set_);
  FD_CLR(fd, &write_set_);
  handlers_[fd] = nullptr;
  --count_;
  while (max_fd_ >= 0 && handlers_[max_fd_] == nullptr) --max_fd_;
}

void SelectPoller::Close(int fd) {
  Forget(fd);
  Poller::Close(fd);
}

Poller::Leftovers SelectPoller::Release(int fd) {
  Forget(fd);
  return Poller::Release(fd);
}

int SelectPoller::PruneClosed() {
  int pruned = 0;
  for (int fd = 0; fd <= max_fd_; ++fd) {
    if (handlers_[fd] != nullptr && fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      Forget(fd);
      ++pruned;
    }
  }
  return pruned;
}

int SelectPoller::Wait(int timeout_ms, std::vector<Event>* events) {
  events->clear();
  fd_set readable;
  fd_set writable;
  int n;
  // Two rounds: a closed fd is pruned once; EBADF again means none was found.
  for (int attempt = 0;; ++attempt) {
    readable = read_set_;
    writable = write_set_;
    timeval tv{};
    timeval* tvp = nullptr;
    if (timeout_ms >= 0) {
      tv.tv_sec = timeout_ms / 1000;
      tv.tv_usec = (timeout_ms % 1000) * 1000;
      tvp = &tv;
    }
    n = select(max_fd_ + 1, &readable, &writable, nullptr, tvp);
    if (n >= 0) break;
    if (errno == EINTR) return 0;
    if (errno != EBADF) DieErrno("select");  // EINVAL/ENOMEM: nothing to recover
    if (PruneClosed() == 0 || attempt > 0) {
      LogError("select: EBADF with no closed fd registered");
      return 0;
    }
  }
  for (int fd = 0; fd <= max_fd_ && static_cast<int>(events->size()) < n; ++fd) {
    uint32_t ready = 0;
    if (FD_ISSET(fd, &readable)) ready |= kReadable;
    if (FD_ISSET(fd, &writable)) ready |= kWritable;
    // An fd at EOF or in error is readable: the read finds out which.
    if (ready != 0) events->push_back(Event{handlers_[fd], ready});
  }
  return static_cast<int>(events->size());
}

}  // namespace gateway
