#include "gateway/blocking_connection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "gateway/event_loop.h"
#include "gateway/frame_codec.h"

namespace gateway {
namespace {

// The buffer an idle connection keeps; it grows to hold a whole frame (at
// most kMaxFrameSize) while one is pending and shrinks back afterwards.
constexpr size_t kIdleBufferBytes = 16 * 1024;
// The longest single poll(): a bound on what a clock jump could cost.
constexpr int64_t kMaxWaitMs = 60'000;

}  // namespace

BlockingConnection::BlockingConnection(int fd, uint64_t id, const SocketAddress& peer, const ReactorOptions* options,
                                       BlockingHost* host, std::unique_ptr<FrameHandler> handler)
    : fd_(fd),
      id_(id),
      peer_(peer),
      options_(options),
      host_(host),
      handler_(std::move(handler)),
      opened_ns_(MonotonicNowNs()),
      last_active_ns_(opened_ns_) {}

void BlockingConnection::Run() {
  std::optional<Ending> ending;
  // A send the peer does not take for --idle_timeout gives up (EAGAIN), so
  // a client that stops reading cannot hold the thread forever.
  if (options_->idle_timeout > absl::ZeroDuration()) {
    const timeval tv = absl::ToTimeval(options_->idle_timeout);
    if (setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) ending = Ending{CloseReason::kError, false};
  }
  if (!ending.has_value()) {
    buf_.resize(kIdleBufferBytes);
    need_read_.store(kHeaderSize, std::memory_order_relaxed);
    host_->Report(*this, {}, {ConnectionState::kRead});
  }
  while (!ending.has_value()) {
    ending = WaitReadable();
    if (ending.has_value()) break;
    const ssize_t n = recv(fd_, buf_.data() + len_, buf_.size() - len_, 0);
    if (n > 0) {
      ending = Answer(static_cast<size_t>(n), MonotonicNowNs());
    } else if (n == 0) {
      // EOF: the peer's FIN, or our own shutdown(SHUT_RD) from RequestClose.
      // A partial frame before it is dropped.
      const CloseReason reason = ReasonOr(CloseReason::kPeerClosed);
      ending = Ending{reason, reason != CloseReason::kPeerClosed};
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      ending = ForErrno(errno);
    }
  }
  if (ending->graceful) {
    host_->Report(*this, {}, {ConnectionState::kClosing});
    Linger();
  }
  host_->Closed(*this, ending->reason);
}

std::optional<BlockingConnection::Ending> BlockingConnection::WaitReadable() {
  // poll() before recv() rather than SO_RCVTIMEO: the deadline changes with
  // every frame, and one poll() needs no setsockopt() per read.
  int64_t deadline = INT64_MAX;
  CloseReason reason = CloseReason::kIdleTimeout;
  if (options_->idle_timeout > absl::ZeroDuration()) {
    deadline = last_active_ns_.load(std::memory_order_relaxed) + absl::ToInt64Nanoseconds(options_->idle_timeout);
  }
  if (options_->frame_timeout > absl::ZeroDuration() && frame_started_ns_ != 0) {
    const int64_t frame_deadline = frame_started_ns_ + absl::ToInt64Nanoseconds(options_->frame_timeout);
    if (frame_deadline < deadline) {
      deadline = frame_deadline;
      reason = CloseReason::kFrameTimeout;
    }
  }
  if (deadline == INT64_MAX) return std::nullopt;
  for (;;) {
    const int64_t wait_ns = deadline - MonotonicNowNs();
    if (wait_ns <= 0) {
      // Idle: nothing arrived for the whole timeout, so nothing is unread
      // and a plain close sends FIN, as the reactors do. A frame timed out
      // may be trickling in still: FIN first, then drop what follows.
      const CloseReason why = ReasonOr(reason);
      return Ending{why, why != CloseReason::kIdleTimeout};
    }
    pollfd p{fd_, POLLIN, 0};
    const int timeout_ms = static_cast<int>(std::min<int64_t>((wait_ns + 999'999) / 1'000'000, kMaxWaitMs));
    const int r = poll(&p, 1, timeout_ms);
    if (r > 0) return std::nullopt;
    // EINTR: wait again; any other error: let recv() report it.
    if (r < 0 && errno != EINTR) return std::nullopt;
  }
}

std::optional<BlockingConnection::Ending> BlockingConnection::Answer(size_t n, int64_t read_ns) {
  Touch(read_ns);
  len_ += n;
  bytes_in_.fetch_add(n, std::memory_order_relaxed);
  // Answer in place; responses are packed at the front so they leave in one send().
  char* data = buf_.data();
  size_t read_pos = 0;
  size_t write_pos = 0;
  uint64_t frames = 0;
  bool bad_header = false;
  size_t pending = 0;
  for (;;) {
    const FrameScan scan = ScanFrame(absl::string_view(data + read_pos, len_ - read_pos));
    read_pos += scan.skip;
    if (scan.status != FrameScan::Status::kFrame) {
      bad_header = scan.status == FrameScan::Status::kError;
      pending = scan.frame_size;
      break;
    }
    char* frame = data + read_pos;
    handler_->HandleInPlace(absl::Span<char>(frame + kHeaderSize, scan.frame_size - kHeaderSize));
    if (write_pos != read_pos) std::memmove(data + write_pos, frame, scan.frame_size);
    write_pos += scan.frame_size;
    read_pos += scan.frame_size;
    ++frames;
  }
  frames_in_.fetch_add(frames, std::memory_order_relaxed);
  BlockingHost::Batch in;
  in.bytes_in = n;
  in.frames_in = frames;
  in.protocol_errors = bad_header ? 1 : 0;
  if (frames > 0) {
    host_->Report(*this, in, {ConnectionState::kProcess, ConnectionState::kWrite});
    if (std::optional<Ending> ending = SendAll(data, write_pos, frames); ending.has_value()) return ending;
    BlockingHost::Batch out;
    out.bytes_out = write_pos;
    out.frames_out = frames;
    if (options_->measure_latency) out.duration_ns = MonotonicNowNs() - read_ns;
    host_->Report(*this, out, {ConnectionState::kRead});
  } else {
    host_->Report(*this, in, {});
  }
  // Responses to the frames before a bad header are delivered; then FIN.
  if (bad_header) return Ending{ReasonOr(CloseReason::kProtocolError), true};
  // A frame begun in this read starts its clock once the responses are out:
  // the time the peer took to take them is not the frame's.
  Compact(read_pos, pending, frames > 0, frames > 0 ? MonotonicNowNs() : read_ns);
  return std::nullopt;
}

std::optional<BlockingConnection::Ending> BlockingConnection::SendAll(const char* data, size_t len, uint64_t frames) {
  // Counted before send(): the peer may read the bytes before send()
  // returns, and a snapshot taken after that must include them. What the
  // socket does not take is taken back.
  frames_out_.fetch_add(frames, std::memory_order_relaxed);
  size_t sent = 0;
  need_write_.store(len, std::memory_order_relaxed);
  std::optional<Ending> ending;
  while (sent < len && !ending.has_value()) {
    const size_t rest = len - sent;
    bytes_out_.fetch_add(rest, std::memory_order_relaxed);
    const ssize_t n = send(fd_, data + sent, rest, MSG_NOSIGNAL);
    const int err = errno;
    bytes_out_.fetch_sub(rest - static_cast<size_t>(std::max<ssize_t>(n, 0)), std::memory_order_relaxed);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      have_write_.store(sent, std::memory_order_relaxed);
      need_write_.store(len - sent, std::memory_order_relaxed);
      Touch(MonotonicNowNs());
    } else if (n < 0 && err == EINTR) {
      continue;
    } else if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
      // SO_SNDTIMEO: the peer took nothing for --idle_timeout. What is
      // unsent cannot be flushed, so no graceful close.
      ending = Ending{ReasonOr(CloseReason::kIdleTimeout), false};
    } else {
      ending = ForErrno(n == 0 ? EPIPE : err);
    }
  }
  if (ending.has_value()) {
    frames_out_.fetch_sub(frames, std::memory_order_relaxed);
    return ending;
  }
  have_write_.store(0, std::memory_order_relaxed);
  need_write_.store(0, std::memory_order_relaxed);
  return std::nullopt;
}

void BlockingConnection::Compact(size_t consumed, size_t pending_frame_size, bool new_frame, int64_t now_ns) {
  const size_t left = len_ - consumed;
  if (consumed > 0 && left > 0) std::memmove(buf_.data(), buf_.data() + consumed, left);
  len_ = left;
  pending_frame_size_ = pending_frame_size;
  if (left == 0) {
    frame_started_ns_ = 0;
  } else if (new_frame || frame_started_ns_ == 0) {
    frame_started_ns_ = now_ns;  // the partial frame's first byte came with this read
  }
  // Room for the whole pending frame; back to the idle size once it is gone.
  if (pending_frame_size_ > buf_.size()) {
    buf_.resize(pending_frame_size_);
  } else if (buf_.size() > kIdleBufferBytes && len_ <= kIdleBufferBytes && pending_frame_size_ <= kIdleBufferBytes) {
    std::vector<char> smaller(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(len_));
    smaller.resize(kIdleBufferBytes);
    buf_.swap(smaller);
  }
  const size_t frame = pending_frame_size_ != 0 ? pending_frame_size_ : kHeaderSize;
  have_read_.store(len_, std::memory_order_relaxed);
  need_read_.store(frame > len_ ? frame - len_ : 0, std::memory_order_relaxed);
}

void BlockingConnection::Linger() {
  if (shutdown(fd_, SHUT_WR) != 0) return;  // the peer is gone: nothing to wait for
  const int64_t deadline = MonotonicNowNs() + absl::ToInt64Nanoseconds(options_->linger);
  for (;;) {
    const int64_t wait_ns = deadline - MonotonicNowNs();
    if (wait_ns <= 0) return;
    pollfd p{fd_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min<int64_t>((wait_ns + 999'999) / 1'000'000, kMaxWaitMs)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    const ssize_t n = recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
    if (n > 0) continue;  // dropped
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    return;  // the peer's FIN (or our SHUT_RD), or an error: done either way
  }
}

void BlockingConnection::RequestClose(CloseReason reason, CloseMode mode) {
  int none = -1;
  requested_reason_.compare_exchange_strong(none, static_cast<int>(reason), std::memory_order_acq_rel);
  // Wakes a recv() or poll() (EOF) and, for kForce, a blocked send() (EPIPE).
  // ENOTCONN: the peer is already gone and the thread is on its way out.
  (void)shutdown(fd_, mode == CloseMode::kForce ? SHUT_RDWR : SHUT_RD);
}

CloseReason BlockingConnection::ReasonOr(CloseReason own) const {
  const int requested = requested_reason_.load(std::memory_order_acquire);
  return requested < 0 ? own : static_cast<CloseReason>(requested);
}

BlockingConnection::Ending BlockingConnection::ForErrno(int err) const {
  return Ending{ReasonOr(err == ECONNRESET || err == EPIPE ? CloseReason::kReset : CloseReason::kError), false};
}

ConnectionInfo BlockingConnection::Snapshot(absl::Time wall_now, int64_t mono_now_ns) const {
  ConnectionInfo info;
  info.fd = fd_;
  info.id = id_;
  info.peer = FormatAddress(peer_);
  info.state = state();
  info.trigger_mode = options_->trigger_mode;  // unused by this model; reported as configured
  info.io_model = IoModel::kBlocking;
  info.reactor = 0;
  info.have_read = have_read_.load(std::memory_order_relaxed);
  info.need_read = need_read_.load(std::memory_order_relaxed);
  info.have_write = have_write_.load(std::memory_order_relaxed);
  info.need_write = need_write_.load(std::memory_order_relaxed);
  info.bytes_in = bytes_in_.load(std::memory_order_relaxed);
  info.bytes_out = bytes_out_.load(std::memory_order_relaxed);
  info.frames_in = frames_in_.load(std::memory_order_relaxed);
  info.frames_out = frames_out_.load(std::memory_order_relaxed);
  info.opened_at = wall_now - absl::Nanoseconds(mono_now_ns - opened_ns_);
  info.last_active_at = wall_now - absl::Nanoseconds(mono_now_ns - last_active_ns_.load(std::memory_order_relaxed));
  return info;
}

}  // namespace gateway
