#include "gateway/signal_poller.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"

namespace gateway {
namespace {

// Signals read per read(2) of the signalfd, and reads per Wait(): a bound on
// one turn's work; what is left keeps the signalfd readable for the next.
constexpr int kSignalsPerRead = 64;
constexpr int kReadsPerWait = 16;

sigset_t ModelSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, ReadinessSignal());
  sigaddset(&set, SIGIO);
  return set;
}

absl::Status ErrnoStatus(absl::string_view what, int fd, int err) {
  return absl::InternalError(absl::StrCat("signal poller: ", what, " (fd ", fd, "): ", std::strerror(err)));
}

uint32_t BandToReady(long band) {
  uint32_t ready = 0;
  if (band & (POLLIN | POLLRDNORM | POLLPRI | POLLMSG)) ready |= Poller::kReadable;
  if (band & (POLLOUT | POLLWRNORM | POLLWRBAND)) ready |= Poller::kWritable;
  if (band & (POLLHUP | POLLERR | POLLRDHUP)) ready |= Poller::kHangup | Poller::kReadable | Poller::kWritable;
  return ready;
}

// Stops the readiness signals for `fd`; errors are ignored (the fd is going).
void Disarm(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0 && (flags & O_ASYNC) != 0) fcntl(fd, F_SETFL, flags & ~O_ASYNC);
}

}  // namespace

int ReadinessSignal() { return SIGRTMIN + 1; }

absl::Status PrepareSignalModel() {
  const sigset_t set = ModelSignals();
  if (const int err = pthread_sigmask(SIG_BLOCK, &set, nullptr); err != 0) {
    return absl::InternalError(absl::StrCat("pthread_sigmask: ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SignalPoller>> SignalPoller::Create() {
  // Blocked here too, so the poller works even without PrepareSignalModel()
  // on a thread that creates it (tests).
  if (absl::Status blocked = PrepareSignalModel(); !blocked.ok()) return blocked;
  const sigset_t set = ModelSignals();
  const int signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat("signalfd: ", std::strerror(errno)));
  }
  std::unique_ptr<SignalPoller> poller(new SignalPoller(signal_fd, gettid()));
  // Signals still queued for this thread are about fds of an earlier poller.
  poller->DrainSignals();
  poller->noted_.clear();
  return poller;
}

SignalPoller::SignalPoller(int signal_fd, pid_t tid) : signal_fd_(signal_fd), tid_(tid) {}

SignalPoller::~SignalPoller() {
  for (int fd = 0; fd < static_cast<int>(entries_.size()); ++fd) {
    const Entry& entry = entries_[fd];
    if (entry.handler == nullptr || entry.role == FdRole::kNotify) continue;
    // A registered fd may have been closed behind our back and its number
    // reused by another reactor: touch it only if it still signals us.
    f_owner_ex owner{};
    if (fcntl(fd, F_GETOWN_EX, &owner) == 0 && owner.type == F_OWNER_TID && owner.pid == tid_) Disarm(fd);
  }
  close(signal_fd_);
  // The signals stay blocked: one may still be queued, and SIGIO would kill.
}

SignalPoller::Entry* SignalPoller::Find(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= entries_.size() || entries_[fd].handler == nullptr) return nullptr;
  return &entries_[fd];
}

absl::Status SignalPoller::Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("signal poller: bad fd ", fd));
  if (role != FdRole::kNotify) {
    f_owner_ex owner{F_OWNER_TID, tid_};
    if (fcntl(fd, F_SETOWN_EX, &owner) != 0) return ErrnoStatus("F_SETOWN_EX", fd, errno);
    if (fcntl(fd, F_SETSIG, ReadinessSignal()) != 0) return ErrnoStatus("F_SETSIG", fd, errno);
    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return ErrnoStatus("F_GETFL", fd, errno);
    if (fcntl(fd, F_SETFL, flags | O_ASYNC | O_NONBLOCK) != 0) return ErrnoStatus("F_SETFL O_ASYNC", fd, errno);
  }
  if (static_cast<size_t>(fd) >= entries_.size()) entries_.resize(static_cast<size_t>(fd) + 1);
  // An fd already here was closed behind our back and its number reused.
  Forget(fd);
  entries_[fd] = Entry{handler, interest, role, 0};
  if (role == FdRole::kNotify) {
    notify_fds_.push_back(fd);
  } else {
    PollNow(fd);  // after O_ASYNC: readiness from before raised no signal
  }
  return absl::OkStatus();
}

absl::Status SignalPoller::Modify(int fd, PollHandler* handler, uint32_t interest) {
  Entry* entry = Find(fd);
  if (entry == nullptr) return absl::NotFoundError(absl::StrCat("signal poller: fd ", fd, " is not registered"));
  const uint32_t added = interest & ~entry->interest;
  entry->handler = handler;
  entry->interest = interest;
  // Signals that came while the interest was off were dropped: look again.
  if (added != 0 && entry->role != FdRole::kNotify) PollNow(fd);
  return absl::OkStatus();
}

void SignalPoller::Forget(int fd) {
  Entry* entry = Find(fd);
  if (entry == nullptr) return;
  if (entry->role == FdRole::kNotify) {
    notify_fds_.erase(std::remove(notify_fds_.begin(), notify_fds_.end(), fd), notify_fds_.end());
  }
  *entry = Entry{};  // a stale fd left in noted_ is skipped by Collect()
}

void SignalPoller::Close(int fd) {
  if (Entry* entry = Find(fd); entry != nullptr && entry->role != FdRole::kNotify) Disarm(fd);
  Forget(fd);
  Poller::Close(fd);
}

Poller::Leftovers SignalPoller::Release(int fd) {
  if (Entry* entry = Find(fd); entry != nullptr && entry->role != FdRole::kNotify) Disarm(fd);
  Forget(fd);
  return Poller::Release(fd);
}

void SignalPoller::Note(int fd, uint32_t ready) {
  if (ready == 0) return;
  Entry& entry = entries_[fd];
  if (entry.pending == 0) noted_.push_back(fd);
  entry.pending |= ready;
}

namespace {

uint32_t ReventsToReady(short revents) {
  uint32_t ready = 0;
  if (revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) ready |= Poller::kReadable;
  if (revents & (POLLOUT | POLLHUP | POLLERR)) ready |= Poller::kWritable;
  if (revents & (POLLRDHUP | POLLHUP | POLLERR)) ready |= Poller::kHangup;
  return ready;
}

constexpr short kAllEvents = POLLIN | POLLOUT | POLLRDHUP;

}  // namespace

void SignalPoller::PollNow(int fd) {
  pollfd p{fd, kAllEvents, 0};
  int n;
  do {
    n = poll(&p, 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n > 0 && (p.revents & POLLNVAL) == 0) Note(fd, ReventsToReady(p.revents));
}

bool SignalPoller::DrainSignals() {
  bool overflow = false;
  signalfd_siginfo infos[kSignalsPerRead];
  for (int round = 0; round < kReadsPerWait; ++round) {
    const ssize_t got = read(signal_fd_, infos, sizeof infos);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN) LogError(absl::StrCat("signal poller: read(signalfd): ", std::strerror(errno)));
      break;
    }
    const int count = static_cast<int>(got / sizeof(signalfd_siginfo));
    for (int i = 0; i < count; ++i) {
      const signalfd_siginfo& info = infos[i];
      if (static_cast<int>(info.ssi_signo) == SIGIO) {
        overflow = true;  // the RT queue was full: some readiness was lost
        continue;
      }
      // Only the kernel's I/O signals (si_code POLL_IN..POLL_HUP) carry an fd.
      if (info.ssi_code <= 0) continue;
      const int fd = info.ssi_fd;
      const Entry* entry = Find(fd);
      if (entry == nullptr || entry->role == FdRole::kNotify) continue;  // stale: the fd is gone
      Note(fd, BandToReady(static_cast<long>(info.ssi_band)));
    }
    if (count < kSignalsPerRead) break;
  }
  return overflow;
}

void SignalPoller::Rescan() {
  ++rescans_;
  poll_set_.clear();
  for (int fd = 0; fd < static_cast<int>(entries_.size()); ++fd) {
    const Entry& entry = entries_[fd];
    if (entry.handler != nullptr && entry.role != FdRole::kNotify) poll_set_.push_back(pollfd{fd, kAllEvents, 0});
  }
  int n;
  do {
    n = poll(poll_set_.data(), poll_set_.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) DieErrno("poll (signal queue overflow rescan)");  // EFAULT/EINVAL/ENOMEM
  for (const pollfd& p : poll_set_) {
    if (p.revents & POLLNVAL) {
      Forget(p.fd);  // closed behind our back
    } else {
      Note(p.fd, ReventsToReady(p.revents));
    }
  }
}

void SignalPoller::CheckHangups() {
  // A FIN is signalled as POLL_IN, like data; a connection that reads the
  // data short would never look for it. One poll() over this turn's readable
  // streams tells a hang-up apart, as EPOLLRDHUP does for epoll.
  poll_set_.clear();
  for (int fd : noted_) {
    const Entry& entry = entries_[fd];
    if (entry.role == FdRole::kStream && (entry.pending & kReadable) != 0 && (entry.pending & kHangup) == 0) {
      poll_set_.push_back(pollfd{fd, POLLRDHUP, 0});
    }
  }
  if (poll_set_.empty()) return;
  int n;
  do {
    n = poll(poll_set_.data(), poll_set_.size(), 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return;  // < 0: EFAULT/EINVAL/ENOMEM; the read finds the end later
  for (const pollfd& p : poll_set_) {
    if ((p.revents & POLLNVAL) == 0) Note(p.fd, ReventsToReady(p.revents));
  }
}

int SignalPoller::Collect(std::vector<Event>* events) {
  CheckHangups();
  for (int fd : noted_) {
    Entry& entry = entries_[fd];
    uint32_t ready = entry.pending;
    entry.pending = 0;
    if (entry.handler == nullptr || entry.interest == 0 || ready == 0) continue;
    // A hang-up or error is reported with any interest, in the direction(s)
    // watched: that read or write surfaces it.
    ready &= entry.interest | kHangup;
    if ((ready & ~kHangup) == 0) continue;
    events->push_back(Event{entry.handler, ready});
  }
  noted_.clear();
  return static_cast<int>(events->size());
}

int SignalPoller::Wait(int timeout_ms, std::vector<Event>* events) {
  events->clear();
  poll_set_.clear();
  poll_set_.push_back(pollfd{signal_fd_, POLLIN, 0});
  for (int fd : notify_fds_) poll_set_.push_back(pollfd{fd, POLLIN, 0});
  // Readiness noted by Add()/Modify() is due now.
  const int n = poll(poll_set_.data(), poll_set_.size(), noted_.empty() ? timeout_ms : 0);
  if (n < 0) {
    if (errno == EINTR) return 0;
    DieErrno("poll (signal poller)");  // EFAULT/EINVAL/ENOMEM: nothing to recover
  }
  // Noted before DrainSignals()/Rescan(), which reuse poll_set_.
  for (size_t i = 1; i < poll_set_.size(); ++i) {
    if (poll_set_[i].revents != 0) Note(poll_set_[i].fd, kReadable);
  }
  if ((poll_set_[0].revents & POLLIN) != 0 && DrainSignals()) Rescan();
  return Collect(events);
}

}  // namespace gateway
