// UringPoller's endings: closing a connection (cancel first, close once
// its queued sends are out), retiring the ring for a live switch (Quiesce,
// Release), and destruction, on the loop thread or off it.
#include "gateway/uring_poller.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"

#ifndef IORING_ASYNC_CANCEL_ALL
#define IORING_ASYNC_CANCEL_ALL (1U << 0)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif

namespace gateway {
namespace {

// How long retiring the ring may wait for its operations to finish, and for
// deferred sends to leave, before giving up.
constexpr int64_t kQuiesceLimitNs = 2'000'000'000;
constexpr int kDeferredSendLimitMs = 100;
// Cancels prepared between two submit-and-reap rounds while retiring.
constexpr int kCancelBatch = 256;

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

UringPoller::~UringPoller() {
  if (!ring_ready_) return;
  if (!OnOwnerThread()) {
    TearDownOffThread();
    return;
  }
  if (!quiesced_) CancelAllAndReap();
  // Streams never released still own bytes Send took: a connection closed
  // in the turn of a live switch closes its fd through the next back-end,
  // after this one is gone. They go out now, as far as they can.
  FinishDeferred(/*flush_open_streams=*/true);
  // Connections accepted and never taken belong to nobody else.
  for (auto& [fd, queue] : listeners_) {
    for (int accepted : queue.accepted) close(accepted);
  }
  if (in_flight_ == 0) {
    buffers_.Unregister(&ring_);
  } else {
    buffers_.Leak();  // the kernel may still write into them
  }
  io_uring_queue_exit(&ring_);
}

void UringPoller::TearDownOffThread() {
  // Nothing can be submitted or reaped from here: the kernel cancels what is
  // left when the ring goes. A receive still armed could write into the
  // buffers, and a send read its bytes, until then, so those stay allocated
  // (for the rest of the process) if there are any; after a normal stop
  // every connection has been closed on the loop thread and there are none.
  bool kernel_may_touch_memory = kernel_may_touch_memory_;
  for (size_t fd = 0; fd < fds_.size(); ++fd) {
    FdState& s = fds_[fd];
    if (!s.active) continue;
    // A receive cancelled by Close() was submitted then; a cap's cancel may not have been.
    if ((s.role == FdRole::kStream && s.armed && s.handler != nullptr) || (s.sends != nullptr && s.sends->in_flight)) {
      kernel_may_touch_memory = true;
    }
  }
  io_uring_queue_exit(&ring_);
  for (auto& [fd, queue] : listeners_) {
    for (int accepted : queue.accepted) close(accepted);
  }
  size_t lost = 0;
  for (size_t fd = 0; fd < fds_.size(); ++fd) {
    FdState& s = fds_[fd];
    if (!s.active || !s.close_pending) continue;
    if (s.sends != nullptr) lost += s.sends->pending();
    close(static_cast<int>(fd));
  }
  if (lost > 0) LogError(absl::StrCat("io_uring: ", lost, " byte(s) queued on closing connections could not be sent"));
  if (kernel_may_touch_memory) {
    buffers_.Leak();
    for (FdState& s : fds_) KeepForever(std::move(s.sends));
  }
}

void UringPoller::KeepForever(std::unique_ptr<Sends> sends) {
  if (sends == nullptr) return;
  // Reachable, so leak checkers do not count what is kept on purpose.
  static std::mutex mu;
  static auto* kept = new std::vector<std::unique_ptr<Sends>>();
  std::lock_guard<std::mutex> lock(mu);
  kept->push_back(std::move(sends));
}

void UringPoller::Close(int fd) {
  if (has_carry()) DropCarried(fd);
  FdState* s = Find(fd);
  if (s == nullptr || s->handler == nullptr) {
    if (s == nullptr) close(fd);
    return;
  }
  if (!OnOwnerThread()) {
    // The loop has stopped (its reactor is being destroyed): nothing more
    // will be sent, and the ring's teardown cancels the receive.
    s->handler = nullptr;
    DropChunks(*s);
    if (s->role == FdRole::kListener) {
      for (int accepted : listeners_[fd].accepted) close(accepted);
      listeners_.erase(fd);
    }
    if (s->armed || (s->sends != nullptr && s->sends->in_flight)) {
      kernel_may_touch_memory_ = true;  // until the ring goes: see TearDownOffThread
      KeepForever(std::move(s->sends));
    }
    CloseNow(fd);
    return;
  }
  // Cancel first: the ring holds its own reference to the socket, so a close
  // alone would leave the receive armed (and the FIN unsent).
  s->handler = nullptr;
  DropChunks(*s);
  const bool cancelled = s->armed;
  Cancel(fd, *s);
  if (s->role == FdRole::kListener) {
    for (int accepted : listeners_[fd].accepted) close(accepted);
    listeners_.erase(fd);
  }
  if (cancelled) SubmitNow();
  if (s->sends != nullptr && s->send_error == 0 && !quiescing_) {
    // Bytes still in our queue must reach the peer before the FIN: the fd
    // (and so its number) stays ours until they have left.
    s->close_pending = true;
    if (!s->sends->in_flight && !s->on_send_list) {
      s->on_send_list = true;
      send_list_.push_back(fd);
    }
    return;
  }
  CloseNow(fd);
}

void UringPoller::CloseNow(int fd) {
  Forget(fd);
  close(fd);
}

void UringPoller::Forget(int fd) {
  FdState& s = fds_[fd];
  DropChunks(s);
  const uint32_t gen = s.gen + 1;
  s = FdState{};
  s.gen = gen;
}

void UringPoller::CancelAllAndReap() {
  quiescing_ = true;
  // One cancel per operation, by its user_data: the kernel finds each in its
  // hash table. A single CANCEL_ANY|CANCEL_ALL rescans every armed request
  // per request it cancels, which took a second at 10,000 connections.
  // Submitted and reaped in batches, so the completion queue never fills.
  int prepared = 0;
  for (size_t i = 0; i < fds_.size(); ++i) {
    const int fd = static_cast<int>(i);
    FdState& s = fds_[i];
    if (!s.active) continue;
    if (s.armed && !s.cancelling) {
      Cancel(fd, s);
      ++prepared;
    }
    if (s.sends != nullptr && s.sends->in_flight) {
      PrepareCancel(UserData(Op::kSend, s.gen, fd));
      ++prepared;
    }
    if (prepared >= kCancelBatch) {
      SubmitNow();
      Reap();
      prepared = 0;
    }
  }
  const int64_t deadline = NowNs() + kQuiesceLimitNs;
  bool swept = false;
  while (in_flight_ > 0) {
    if (NowNs() > deadline) {
      LogError(absl::StrCat("io_uring: ", in_flight_, " operation(s) still in flight after cancelling them for 2 s"));
      break;
    }
    __kernel_timespec ts{};
    ts.tv_nsec = 50'000'000;
    io_uring_cqe* cqe = nullptr;
    const int result = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    if (result < 0 && result != -ETIME && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
      errno = -result;
      DieErrno("io_uring_enter");
    }
    // Nothing came for 50 ms: an operation this poller no longer tracks
    // by key (its fd forgotten). One sweep cancels whatever is left.
    if (result == -ETIME && !swept) {
      PrepareCancel(0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
      swept = true;
    }
    Reap();
  }
  for (int fd : ready_fds_) fds_[fd].ready = 0;
  ready_fds_.clear();
}

void UringPoller::FinishDeferred(bool flush_open_streams) {
  // Closes and shutdowns that waited for sends: finish them with plain
  // non-blocking sends, waiting a little for room, and count what is lost.
  const int64_t deadline = NowNs() + int64_t{kDeferredSendLimitMs} * 1'000'000;
  size_t lost = 0;
  for (size_t i = 0; i < fds_.size(); ++i) {
    const int fd = static_cast<int>(i);
    FdState& s = fds_[i];
    if (!s.active || !(s.close_pending || s.shutdown_pending || (flush_open_streams && s.sends != nullptr))) continue;
    std::string rest;
    if (s.sends != nullptr) rest = s.sends->sending.substr(s.sends->sent) + s.sends->queued;
    size_t sent = 0;
    while (sent < rest.size()) {
      const ssize_t n = send(fd, rest.data() + sent, rest.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      const int wait_ms = static_cast<int>((deadline - NowNs()) / 1'000'000);
      if (n < 0 && errno == EAGAIN && wait_ms > 0) {
        pollfd pfd{fd, POLLOUT, 0};
        if (poll(&pfd, 1, wait_ms) >= 0 || errno == EINTR) continue;
      }
      break;
    }
    lost += rest.size() - sent;
    s.sends.reset();
    if (s.close_pending) {
      CloseNow(fd);
    } else if (s.shutdown_pending) {
      s.shutdown_pending = false;
      if (sent == rest.size()) shutdown(fd, SHUT_WR);
    }
  }
  if (lost > 0) LogError(absl::StrCat("io_uring: ", lost, " byte(s) queued on closing connections could not be sent"));
}

void UringPoller::Quiesce() {
  if (quiesced_) return;
  CancelAllAndReap();
  FinishDeferred(/*flush_open_streams=*/false);  // live streams get theirs back from Release
  quiesced_ = true;
}

Poller::Leftovers UringPoller::Release(int fd) {
  Leftovers leftovers = Poller::Release(fd);  // bytes carried in come first
  FdState* s = Find(fd);
  if (s == nullptr) return leftovers;
  for (size_t i = s->head; i < s->chunks.size(); ++i) {
    const Chunk& chunk = s->chunks[i];
    leftovers.unread.append(buffers_.data(chunk.bid) + chunk.offset, chunk.len);
  }
  leftovers.eof = leftovers.eof || s->eof;
  if (leftovers.error == 0) leftovers.error = s->recv_error != 0 ? s->recv_error : s->send_error;
  if (s->sends != nullptr) leftovers.unsent = s->sends->sending.substr(s->sends->sent) + s->sends->queued;
  if (auto it = listeners_.find(fd); it != listeners_.end()) {
    leftovers.accepted.assign(it->second.accepted.begin(), it->second.accepted.end());
    listeners_.erase(it);
  }
  Forget(fd);
  return leftovers;
}

}  // namespace gateway
