#include "gateway/listener.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "gateway/thread_check.h"

namespace gateway {

Listener::Listener(EventLoop* loop, ListenerHost* host, ReactorStats* stats, int accept_budget, int listen_fd)
    : loop_(loop),
      host_(host),
      stats_(stats),
      accept_budget_(accept_budget),
      fd_(listen_fd),
      spare_fd_(open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

Listener::~Listener() {
  // Through the back-end, which stops watching it first: io_uring holds its
  // own reference to a listener with a multishot accept armed, and would
  // keep accepting on a port we closed.
  if (loop_->has_poller()) {
    loop_->poller().Close(fd_);
  } else {
    close(fd_);
  }
  if (spare_fd_ >= 0) close(spare_fd_);
}

absl::Status Listener::Register() {
  GATEWAY_ASSERT_IN_LOOP(*loop_);
  return loop_->poller().Add(fd_, this, Poller::kReadable, FdRole::kListener);
}

absl::Status Listener::Reregister() {
  GATEWAY_ASSERT_IN_LOOP(*loop_);
  return loop_->poller().Modify(fd_, this, Poller::kReadable);
}

absl::Status Listener::Mute() {
  GATEWAY_ASSERT_IN_LOOP(*loop_);
  // Interest 0 keeps the registration but reports nothing: a listener with
  // a full backlog would otherwise wake a level-triggered loop at once.
  return loop_->poller().Modify(fd_, this, 0);
}

void Listener::AcceptSome() {
  GATEWAY_ASSERT_IN_LOOP(*loop_);
  for (int budget = accept_budget_; budget > 0; --budget) {
    SocketAddress peer{};
    socklen_t len = sizeof peer;
    const int fd = loop_->poller().Accept(fd_, &peer.sa, &len);
    if (fd >= 0) {
      host_->Accepted(fd, peer);
      continue;
    }
    switch (errno) {
      case EAGAIN: return;  // drained: in edge mode the next connection brings a new edge
      case EINTR:
      case ECONNABORTED:
      case EPROTO: continue;
      case EMFILE:
      case ENFILE:
        stats_->accept_errors.Add();
        host_->OutOfFds();
        switch (ShedOne()) {
          case ShedResult::kShed: continue;
          case ShedResult::kBacklogEmpty: return;
          case ShedResult::kNoFd: host_->PauseAccepting(); return;
        }
        return;
      default:  // ENOBUFS, ENOMEM: try again after a pause, not in a spin
        stats_->accept_errors.Add();
        host_->PauseAccepting();
        return;
    }
  }
  host_->AcceptLater();  // budget spent with connections maybe still queued
}

void Listener::RefillSpare() {
  GATEWAY_ASSERT_IN_LOOP(*loop_);
  if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::ShedResult Listener::ShedOne() {
  RefillSpare();
  if (spare_fd_ < 0) return ShedResult::kNoFd;
  close(spare_fd_);
  spare_fd_ = -1;
  int fd;
  do {
    fd = loop_->poller().Accept(fd_, nullptr, nullptr);
  } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO));
  const int accept_errno = errno;
  if (fd >= 0) {
    close(fd);
    stats_->accepted.Add();
    stats_->rejected.Add();
    stats_->closed[static_cast<int>(CloseReason::kError)].Add();
  }
  RefillSpare();
  if (fd >= 0) return ShedResult::kShed;
  if (accept_errno == EAGAIN || accept_errno == EWOULDBLOCK) return ShedResult::kBacklogEmpty;
  stats_->accept_errors.Add();
  return ShedResult::kNoFd;  // another thread took the freed number
}

}  // namespace gateway
