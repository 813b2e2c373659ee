#include "gateway/listener.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "gateway/reactor.h"
#include "gateway/socket_util.h"

namespace gateway {

Listener::Listener(Reactor* reactor, int listen_fd)
    : reactor_(reactor), fd_(listen_fd), spare_fd_(open("/dev/null", O_RDONLY | O_CLOEXEC)) {}

Listener::~Listener() {
  close(fd_);
  if (spare_fd_ >= 0) close(spare_fd_);
}

absl::Status Listener::Register() { return reactor_->poller().Add(fd_, this, Poller::kReadable); }

absl::Status Listener::Reregister() { return reactor_->poller().Modify(fd_, this, Poller::kReadable); }

void Listener::AcceptSome() {
  for (int budget = reactor_->options().accept_budget; budget > 0; --budget) {
    SocketAddress peer{};
    socklen_t len = sizeof peer;
    const int fd = accept4(fd_, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      reactor_->OnAccepted(fd, peer);
      continue;
    }
    switch (errno) {
      case EAGAIN:
        return;  // drained: in edge mode the next connection brings a new edge
      case EINTR:
      case ECONNABORTED:
      case EPROTO:
        continue;
      case EMFILE:
      case ENFILE:
        reactor_->mutable_stats().accept_errors.Add();
        reactor_->OutOfFds();
        switch (ShedOne()) {
          case ShedResult::kShed: continue;
          case ShedResult::kBacklogEmpty: return;
          case ShedResult::kNoFd: reactor_->PauseAccepting(); return;
        }
        return;
      default:  // ENOBUFS, ENOMEM: try again after a pause, not in a spin
        reactor_->mutable_stats().accept_errors.Add();
        reactor_->PauseAccepting();
        return;
    }
  }
  reactor_->OweAccept();  // budget spent with connections maybe still queued
}

void Listener::RefillSpare() {
  if (spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

Listener::ShedResult Listener::ShedOne() {
  RefillSpare();
  if (spare_fd_ < 0) return ShedResult::kNoFd;
  close(spare_fd_);
  spare_fd_ = -1;
  int fd;
  do {
    fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  } while (fd < 0 && (errno == EINTR || errno == ECONNABORTED || errno == EPROTO));
  const int accept_errno = errno;
  if (fd >= 0) {
    close(fd);
    ReactorStats& stats = reactor_->mutable_stats();
    stats.accepted.Add();
    stats.rejected.Add();
    stats.closed[static_cast<int>(CloseReason::kError)].Add();
  }
  RefillSpare();
  if (fd >= 0) return ShedResult::kShed;
  if (accept_errno == EAGAIN || accept_errno == EWOULDBLOCK) return ShedResult::kBacklogEmpty;
  reactor_->mutable_stats().accept_errors.Add();
  return ShedResult::kNoFd;  // another thread took the freed number
}

}  // namespace gateway
