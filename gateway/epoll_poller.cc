#include "gateway/epoll_poller.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"

namespace gateway {
namespace {

// Events taken per epoll_wait. Not tuned by measurement: large enough that a
// wakeup under a full load of connections rarely needs a second call.
constexpr int kMaxEventsPerWait = 1024;

}  // namespace

EpollPoller::EpollPoller(TriggerMode mode) : epfd_(epoll_create1(EPOLL_CLOEXEC)), mode_(mode) {
  if (epfd_ < 0) DieErrno("epoll_create1");
  raw_.resize(kMaxEventsPerWait);
}

EpollPoller::~EpollPoller() { close(epfd_); }

absl::Status EpollPoller::Control(int op, int fd, PollHandler* handler, uint32_t interest) {
  struct epoll_event ev {};
  // EPOLLRDHUP only with read interest: level-triggered, a peer's FIN would
  // otherwise wake every epoll_wait while the connection is not reading
  // (paused, or flushing after the FIN), spinning the reactor until it drains.
  if (interest & kReadable) ev.events |= EPOLLIN | EPOLLRDHUP;
  if (interest & kWritable) ev.events |= EPOLLOUT;
  if (mode_ == TriggerMode::kEdge) ev.events |= EPOLLET;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, op, fd, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl(fd ", fd, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status EpollPoller::Add(int fd, PollHandler* handler, uint32_t interest, FdRole /*role*/) {
  return Control(EPOLL_CTL_ADD, fd, handler, interest);
}

absl::Status EpollPoller::Modify(int fd, PollHandler* handler, uint32_t interest) {
  return Control(EPOLL_CTL_MOD, fd, handler, interest);
}

int EpollPoller::Wait(int timeout_ms, std::vector<Event>* events) {
  events->clear();
  const int n = epoll_wait(epfd_, raw_.data(), static_cast<int>(raw_.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    DieErrno("epoll_wait");  // EBADF/EFAULT/EINVAL: a bug, not a runtime condition
  }
  for (int i = 0; i < n; ++i) {
    const uint32_t e = raw_[i].events;
    uint32_t ready = 0;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ready |= kReadable;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) ready |= kWritable;
    if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) ready |= kHangup;
    events->push_back(Event{static_cast<PollHandler*>(raw_[i].data.ptr), ready});
  }
  return n;
}

}  // namespace gateway
