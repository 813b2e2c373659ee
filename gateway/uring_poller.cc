// UringPoller's core: the ring, registration, the loop turn (one
// io_uring_enter that submits, waits and reaps) and the receive side.
#include "gateway/uring_poller.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"

namespace gateway {
namespace {

// Streams whose receive ran out of buffers re-armed per loop turn, so a
// flood of them cannot make one turn long.
constexpr int kRearmsPerTurn = 64;
// Completions copied out of the ring at a time.
constexpr unsigned kReapBatch = 256;

[[noreturn]] void DieWith(const char* what, int err) {
  errno = err;
  DieErrno(what);
}

}  // namespace

absl::StatusOr<std::unique_ptr<UringPoller>> UringPoller::Create() {
  std::unique_ptr<UringPoller> poller(new UringPoller());
  if (const int result = SetUpUring(&poller->ring_); result < 0) return UringSetupError(-result);
  poller->ring_ready_ = true;
  if (const int result = poller->buffers_.Register(&poller->ring_); result < 0) {
    return absl::FailedPreconditionError(absl::StrCat("io_uring_register_buf_ring: ", std::strerror(-result),
                                                      " (Linux 5.19 or newer needed); use --io_model=epoll"));
  }
  return poller;
}

UringPoller::FdState* UringPoller::Find(int fd) {
  if (fd < 0 || static_cast<size_t>(fd) >= fds_.size() || !fds_[fd].active) return nullptr;
  return &fds_[fd];
}

void UringPoller::Ready(int fd, FdState& s, uint8_t bits) {
  if (s.ready == 0) ready_fds_.push_back(fd);
  s.ready |= bits;
}

io_uring_sqe* UringPoller::GetSqe() {
  // A full submission queue is submitted early (completions still wait for
  // the turn's io_uring_enter under DEFER_TASKRUN).
  for (int attempt = 0; attempt < 1000; ++attempt) {
    if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) return sqe;
    const int result = io_uring_submit(&ring_);
    if (result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY) DieWith("io_uring_submit", -result);
  }
  Die("io_uring: the submission queue stays full");
}

void UringPoller::SubmitNow() {
  // With GETEVENTS, so the deferred completion of what was cancelled runs
  // now and drops the ring's reference to the socket: a closed connection
  // sends its FIN, a closed listener stops accepting, even if the loop never
  // waits again.
  for (;;) {
    const int result = io_uring_submit_and_get_events(&ring_);
    if (result >= 0 || result == -EAGAIN || result == -EBUSY) return;
    if (result != -EINTR) DieWith("io_uring_submit", -result);
  }
}

// --- Registration. ---

absl::Status UringPoller::Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) {
  if (fd < 0) return absl::InvalidArgumentError("io_uring: negative fd");
  if (static_cast<size_t>(fd) >= fds_.size()) fds_.resize(static_cast<size_t>(fd) + 1);
  if (fds_[fd].active) return absl::AlreadyExistsError(absl::StrCat("io_uring: fd ", fd, " is already registered"));
  Forget(fd);
  FdState& s = fds_[fd];
  s.active = true;
  s.handler = handler;
  s.role = role;
  switch (role) {
    case FdRole::kStream:
      ArmRecv(fd, s);
      // As epoll reports a writable socket at once.
      if (interest & kWritable) Ready(fd, s, kWritable);
      break;
    case FdRole::kListener:
      listeners_[fd] = ListenerQueue{};
      s.muted = interest == 0;
      MaybeArm(fd, s);
      break;
    case FdRole::kNotify: MaybeArm(fd, s); break;
  }
  return absl::OkStatus();
}

absl::Status UringPoller::Modify(int fd, PollHandler* handler, uint32_t interest) {
  FdState* s = Find(fd);
  if (s == nullptr || s->handler == nullptr) {
    return absl::NotFoundError(absl::StrCat("io_uring: fd ", fd, " is not registered"));
  }
  s->handler = handler;
  switch (s->role) {
    case FdRole::kStream:
      // Interest is advisory here: the connection reads until EAGAIN anyway.
      if ((interest & kWritable) && (s->sends == nullptr || s->sends->pending() < kSendCap)) Ready(fd, *s, kWritable);
      if ((interest & kReadable) && (s->queued > 0 || s->eof || s->recv_error != 0)) Ready(fd, *s, kReadable);
      break;
    case FdRole::kListener:
      s->muted = interest == 0;
      if (s->muted) {
        if (s->armed) Cancel(fd, *s);
      } else {
        MaybeArm(fd, *s);
        const ListenerQueue& queue = listeners_[fd];
        if (!queue.accepted.empty() || queue.error != 0) Ready(fd, *s, kReadable);
      }
      break;
    case FdRole::kNotify: break;
  }
  return absl::OkStatus();
}

void UringPoller::ArmRecv(int fd, FdState& s) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = UringBufferRing::kGroup;
  io_uring_sqe_set_data64(sqe, UserData(Op::kRecv, s.gen, fd));
  s.armed = true;
  s.cancelling = false;
  ++in_flight_;
}

void UringPoller::MaybeArm(int fd, FdState& s) {
  if (quiescing_ || !s.active || s.handler == nullptr || s.armed) return;
  switch (s.role) {
    case FdRole::kStream:
      if (s.eof || s.recv_error != 0 || s.waiting_buffers || s.queued >= kRecvCap || s.close_pending) return;
      ArmRecv(fd, s);
      return;
    case FdRole::kListener: {
      if (s.muted) return;
      io_uring_sqe* sqe = GetSqe();
      if (listeners_[fd].readiness) {
        io_uring_prep_poll_multishot(sqe, fd, POLLIN);
        io_uring_sqe_set_data64(sqe, UserData(Op::kPoll, s.gen, fd));
      } else {
        io_uring_prep_multishot_accept(sqe, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, UserData(Op::kAccept, s.gen, fd));
      }
      break;
    }
    case FdRole::kNotify: {
      io_uring_sqe* sqe = GetSqe();
      io_uring_prep_poll_multishot(sqe, fd, POLLIN);
      io_uring_sqe_set_data64(sqe, UserData(Op::kPoll, s.gen, fd));
      break;
    }
  }
  s.armed = true;
  s.cancelling = false;
  ++in_flight_;
}

void UringPoller::Cancel(int fd, FdState& s) {
  if (!s.armed || s.cancelling) return;
  Op op = Op::kPoll;
  if (s.role == FdRole::kStream) op = Op::kRecv;
  if (s.role == FdRole::kListener && !listeners_[fd].readiness) op = Op::kAccept;
  // By user_data, not by fd: the fd may be closed before this is submitted.
  PrepareCancel(UserData(op, s.gen, fd));
  s.cancelling = true;
}

void UringPoller::PrepareCancel(uint64_t target, uint32_t flags) {
  io_uring_sqe* sqe = GetSqe();
  io_uring_prep_cancel64(sqe, target, static_cast<int>(flags));
  io_uring_sqe_set_data64(sqe, UserData(Op::kCancel, 0, 0));
  ++in_flight_;
}

// --- The loop turn. ---

int UringPoller::Wait(int timeout_ms, std::vector<Event>* events) {
  events->clear();
  if (quiesced_) return 0;
  FlushSendList();
  RearmWaitingForBuffers();
  int result;
  // Something to report already, or streams still to re-arm: do not block.
  const bool busy =
      !ready_fds_.empty() || io_uring_cq_ready(&ring_) > 0 || (!waiting_buffers_.empty() && buffers_.available() > 0);
  if (timeout_ms == 0 || busy) {
    result = io_uring_submit_and_get_events(&ring_);  // also runs deferred completions, without waiting
  } else if (timeout_ms < 0) {
    result = io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1'000'000;
    io_uring_cqe* cqe = nullptr;
    result = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  if (result < 0 && result != -ETIME && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
    DieWith("io_uring_enter", -result);  // EBADF/EFAULT/EINVAL: a bug, not a runtime condition
  }
  Reap();
  for (int fd : ready_fds_) {
    FdState& s = fds_[fd];
    if (s.ready != 0 && s.active && s.handler != nullptr) events->push_back(Event{s.handler, s.ready});
    s.ready = 0;
  }
  ready_fds_.clear();
  return static_cast<int>(events->size());
}

void UringPoller::Reap() {
  struct Completion {
    uint64_t user_data;
    int res;
    uint32_t flags;
  };
  io_uring_cqe* cqes[kReapBatch];
  Completion batch[kReapBatch];
  // Bounded: completions keep coming only while there are operations.
  for (int round = 0; round < 64; ++round) {
    const unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, kReapBatch);
    if (n == 0) return;
    // Copied out first, so the ring has room again before handling them
    // prepares new operations.
    for (unsigned i = 0; i < n; ++i) batch[i] = Completion{cqes[i]->user_data, cqes[i]->res, cqes[i]->flags};
    io_uring_cq_advance(&ring_, n);
    for (unsigned i = 0; i < n; ++i) HandleCqe(batch[i].user_data, batch[i].res, batch[i].flags);
  }
}

void UringPoller::HandleCqe(uint64_t user_data, int res, uint32_t flags) {
  const bool more = (flags & IORING_CQE_F_MORE) != 0;
  if (!more) --in_flight_;
  const Op op = static_cast<Op>(user_data >> 56);
  const uint32_t gen = static_cast<uint32_t>(user_data >> 32) & 0xFFFFFF;
  const int fd = static_cast<int>(static_cast<uint32_t>(user_data));
  if (op == Op::kCancel) return;
  if (flags & IORING_CQE_F_BUFFER) buffers_.Taken();
  FdState* s = Find(fd);
  if (s == nullptr || (s->gen & 0xFFFFFF) != gen) {
    // A completion for an fd closed or released since: its buffer goes
    // back, an fd it accepted is closed.
    if (flags & IORING_CQE_F_BUFFER) buffers_.Return(static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT));
    if (op == Op::kAccept && res >= 0) close(res);
    return;
  }
  switch (op) {
    case Op::kRecv:
      if (!more) s->armed = false;
      OnRecv(fd, *s, res, flags);
      break;
    case Op::kSend: OnSend(fd, *s, res); break;
    case Op::kAccept:
      if (!more) s->armed = false;
      OnAccept(fd, *s, res);
      break;
    case Op::kPoll:
      if (!more) s->armed = false;
      if (res > 0 && s->handler != nullptr) Ready(fd, *s, kReadable);
      break;
    case Op::kCancel: break;
  }
  if (!more && op != Op::kSend) MaybeArm(fd, *s);
}

void UringPoller::OnRecv(int fd, FdState& s, int res, uint32_t flags) {
  const bool has_buffer = (flags & IORING_CQE_F_BUFFER) != 0;
  const uint16_t bid = static_cast<uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
  if (res > 0 && has_buffer && s.handler != nullptr) {
    s.chunks.push_back(Chunk{bid, 0, static_cast<uint32_t>(res)});
    s.queued += static_cast<uint32_t>(res);
    Ready(fd, s, kReadable);
    if (s.queued >= kRecvCap && s.armed && !s.cancelling) {
      ++counters_.cap_cancels;
      Cancel(fd, s);  // re-armed by Readv
    }
    return;
  }
  if (has_buffer) buffers_.Return(bid);
  if (s.handler == nullptr) return;  // closing: nobody reads any more
  if (res == 0) {
    s.eof = true;
    Ready(fd, s, kReadable | kHangup);
  } else if (res == -ENOBUFS) {
    ++counters_.enobufs;
    if (!s.waiting_buffers) {
      s.waiting_buffers = true;
      waiting_buffers_.emplace_back(fd, s.gen);
    }
  } else if (res < 0 && res != -ECANCELED) {
    s.recv_error = -res;
    Ready(fd, s, kReadable | kWritable | kHangup);
  }
}

void UringPoller::RearmWaitingForBuffers() {
  for (int rearmed = 0; rearmed < kRearmsPerTurn && !waiting_buffers_.empty(); ++rearmed) {
    if (buffers_.available() == 0) return;
    const auto [fd, gen] = waiting_buffers_.front();
    waiting_buffers_.pop_front();
    FdState* s = Find(fd);
    if (s == nullptr || s->gen != gen) continue;
    s->waiting_buffers = false;
    MaybeArm(fd, *s);
  }
}

void UringPoller::OnAccept(int fd, FdState& s, int res) {
  ListenerQueue& queue = listeners_[fd];
  if (res >= 0) {
    if (s.handler == nullptr) {
      close(res);
      return;
    }
    queue.accepted.push_back(res);
    Ready(fd, s, kReadable);
  } else if (res != -ECANCELED) {
    // The multishot has ended (EMFILE, ENFILE, ...): Accept reports it once,
    // then serves with accept4(2) on readiness (see ListenerQueue).
    queue.error = -res;
    queue.readiness = true;
    queue.accepted_since_error = false;
    Ready(fd, s, kReadable);
  }
}

int UringPoller::Accept(int listen_fd, sockaddr* peer, socklen_t* peer_len) {
  FdState* s = Find(listen_fd);
  if (s == nullptr || s->role != FdRole::kListener) return Poller::Accept(listen_fd, peer, peer_len);
  ListenerQueue& queue = listeners_[listen_fd];
  if (!queue.accepted.empty()) {
    const int fd = queue.accepted.front();
    queue.accepted.pop_front();
    if (peer != nullptr && getpeername(fd, peer, peer_len) != 0) *peer_len = 0;
    return fd;
  }
  if (queue.error != 0) {
    errno = queue.error;
    queue.error = 0;
    return -1;
  }
  if (!queue.readiness) {
    errno = EAGAIN;  // the multishot accept brings the next one
    return -1;
  }
  const int fd = Poller::Accept(listen_fd, peer, peer_len);
  if (fd >= 0) {
    queue.accepted_since_error = true;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    if (queue.accepted_since_error) {
      // Fds are to be had again: back to the multishot accept once the
      // poll's cancellation completes (HandleCqe re-arms).
      if (s->armed) Cancel(listen_fd, *s);  // the poll (Cancel reads `readiness`)
      queue.readiness = false;
    }
    MaybeArm(listen_fd, *s);
    errno = EAGAIN;
  }
  return fd;
}

// --- Receiving. ---

ssize_t UringPoller::Readv(int fd, const iovec* iov, int iov_count) {
  if (has_carry()) [[unlikely]] {
    ssize_t result;
    if (ReadCarried(fd, iov, iov_count, &result)) return result;
  }
  FdState* s = Find(fd);
  if (s == nullptr || s->role != FdRole::kStream) return readv(fd, iov, iov_count);
  size_t copied = 0;
  size_t wanted = 0;
  for (int i = 0; i < iov_count; ++i) {
    wanted += iov[i].iov_len;
    size_t filled = 0;
    while (filled < iov[i].iov_len && s->head < s->chunks.size()) {
      Chunk& chunk = s->chunks[s->head];
      const size_t n = std::min<size_t>(iov[i].iov_len - filled, chunk.len);
      std::memcpy(static_cast<char*>(iov[i].iov_base) + filled, buffers_.data(chunk.bid) + chunk.offset, n);
      filled += n;
      chunk.offset = static_cast<uint16_t>(chunk.offset + n);
      chunk.len -= static_cast<uint32_t>(n);
      s->queued -= static_cast<uint32_t>(n);
      if (chunk.len == 0) {
        buffers_.Return(chunk.bid);
        ++s->head;
      }
    }
    copied += filled;
  }
  if (s->head == s->chunks.size()) {
    s->head = 0;
    s->chunks.clear();  // frees a heap block, if it had one
  }
  if (!s->armed) MaybeArm(fd, *s);  // below the cap again
  if (copied > 0 || wanted == 0) return static_cast<ssize_t>(copied);
  if (s->recv_error != 0) {
    errno = s->recv_error;
    return -1;
  }
  if (s->eof) return 0;
  errno = EAGAIN;
  return -1;
}

void UringPoller::DropChunks(FdState& s) {
  for (size_t i = s.head; i < s.chunks.size(); ++i) buffers_.Return(s.chunks[i].bid);
  s.chunks.clear();
  s.head = 0;
  s.queued = 0;
}

}  // namespace gateway
