#include "gateway/upstream_connection.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gateway/event_loop.h"
#include "gateway/frame_codec.h"
#include "gateway/reactor_stats.h"
#include "gateway/upstream_pool.h"

namespace gateway {
namespace {

// Bytes read from a backend per recv.
constexpr size_t kReadChunk = 64 * 1024;
// A connect that failed is retried no sooner than this.
constexpr int64_t kReconnectDelayNs = 100'000'000;

}  // namespace

UpstreamConnection::UpstreamConnection(UpstreamPool* pool, PoolBackend* backend) : pool_(pool), backend_(backend) {}

UpstreamConnection::~UpstreamConnection() {
  CloseFd();
  if (phase_ == Phase::kConnected) backend_->shard->connections.Add(-1);
}

void UpstreamConnection::CloseFd() {
  if (fd_ < 0) return;
  if (phase_ == Phase::kConnecting) pool_->UnwatchConnect(fd_);
  if (registered_) {
    pool_->loop()->poller().Close(fd_);  // also ends its registration
  } else {
    close(fd_);
  }
  fd_ = -1;
  registered_ = false;
}

bool UpstreamConnection::has_room() const {
  return phase_ != Phase::kIdle && fifo_.size() < static_cast<size_t>(pool_->options().max_inflight);
}

void UpstreamConnection::SetPhase(Phase phase) {
  if (phase_ == Phase::kConnected) backend_->shard->connections.Add(-1);
  if (phase == Phase::kConnected) backend_->shard->connections.Add(1);
  phase_ = phase;
}

void UpstreamConnection::Connect(int64_t now_ns) {
  if (phase_ != Phase::kIdle || now_ns < retry_at_ns_) return;
  const int family = backend_->resolved.sa.sa_family;
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    retry_at_ns_ = now_ns + kReconnectDelayNs;
    backend_->shard->errors[static_cast<int>(UpstreamError::kConnect)].Add();
    pool_->Failed(backend_, UpstreamError::kConnect, absl::StrCat("socket: ", std::strerror(errno)));
    return;
  }
  const int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // requests are small and latency-bound
  const socklen_t len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  int rc;
  do {
    rc = connect(fd, &backend_->resolved.sa, len);
  } while (rc != 0 && errno == EINTR);
  // An immediate refusal only counts (nothing is queued on an idle
  // connection); the rest is reported by the connector.
  if (rc != 0 && errno != EINPROGRESS) {
    const int err = errno;
    close(fd);
    retry_at_ns_ = now_ns + kReconnectDelayNs;
    backend_->shard->errors[static_cast<int>(UpstreamError::kConnect)].Add();
    pool_->Failed(backend_, UpstreamError::kConnect, absl::StrCat("connect: ", std::strerror(err)));
    return;
  }
  if (absl::Status watched = pool_->WatchConnect(fd, this); !watched.ok()) {
    close(fd);
    retry_at_ns_ = now_ns + kReconnectDelayNs;
    pool_->Failed(backend_, UpstreamError::kConnect, watched.message());
    return;
  }
  fd_ = fd;
  SetPhase(Phase::kConnecting);
  connect_deadline_ns_ = now_ns + absl::ToInt64Nanoseconds(pool_->options().connect_timeout);
}

void UpstreamConnection::OnConnected(int err) {
  if (phase_ != Phase::kConnecting) return;
  pool_->UnwatchConnect(fd_);
  if (err != 0) {
    Fail(UpstreamError::kConnect, absl::StrCat("connect: ", std::strerror(err)));
    return;
  }
  if (absl::Status added = pool_->loop()->poller().Add(fd_, this, Poller::kReadable | Poller::kWritable); !added.ok()) {
    Fail(UpstreamError::kConnect, std::string(added.message()));
    return;
  }
  registered_ = true;
  SetPhase(Phase::kConnected);
  writable_ = true;
  pool_->Pump(backend_);
  if (appended_ > sent_) pool_->MarkDirty(this);
}

void UpstreamConnection::Queue(std::shared_ptr<ClientLink> link, uint64_t seq, absl::string_view frame,
                               int64_t submit_ns) {
  if (out_.empty()) out_base_ = appended_;
  Entry entry{std::move(link), seq, appended_, appended_ + frame.size(), submit_ns};
  out_.append(frame.data(), frame.size());
  appended_ += frame.size();
  fifo_.push_back(std::move(entry));
  ++frames_since_flush_;
  backend_->shard->pending.Add(1);
  if (phase_ == Phase::kConnected) pool_->MarkDirty(this);
}

void UpstreamConnection::Service() {
  if (phase_ != Phase::kConnected) return;
  if (readable_) {
    ReadResponses();
    if (phase_ != Phase::kConnected) return;
  }
  Flush();
}

void UpstreamConnection::Flush() {
  if (phase_ != Phase::kConnected || !writable_ || sent_ == appended_) return;
  const size_t offset = static_cast<size_t>(sent_ - out_base_);
  size_t taken = 0;
  while (offset + taken < out_.size()) {
    const ssize_t n = pool_->loop()->poller().Send(fd_, out_.data() + offset + taken, out_.size() - offset - taken);
    if (n > 0) {
      taken += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      writable_ = false;
      break;
    }
    Fail(UpstreamError::kReset, absl::StrCat("send: ", std::strerror(n == 0 ? EPIPE : errno)));
    return;
  }
  if (taken == 0) return;
  if (frames_since_flush_ > 0) {
    pool_->stats()->upstream_write_frames.Observe(static_cast<double>(frames_since_flush_));
    frames_since_flush_ = 0;
  }
  sent_ += taken;
  CountWritten(pool_->loop()->now_ns());
  Compact();
}

void UpstreamConnection::CountWritten(int64_t now_ns) {
  BackendShard& shard = *backend_->shard;
  while (written_count_ < fifo_.size() && fifo_[written_count_].end <= sent_) {
    fifo_[written_count_++].written_ns = now_ns;
    shard.pending.Add(-1);
    shard.inflight.Add(1);
    shard.requests.Add();
  }
}

void UpstreamConnection::Compact() {
  // Keep the bytes of every request not wholly written: a failure sends them
  // elsewhere.
  const uint64_t keep_from = written_count_ < fifo_.size() ? fifo_[written_count_].start : sent_;
  const size_t drop = static_cast<size_t>(std::min<uint64_t>(keep_from, appended_) - out_base_);
  if (drop == 0) return;
  if (drop == out_.size()) {
    out_.clear();
    if (out_.capacity() > 2 * kReadChunk) std::string().swap(out_);
  } else {
    out_.erase(0, drop);
  }
  out_base_ += drop;
}

void UpstreamConnection::OnReady(uint32_t ready) {
  if (ready & Poller::kWritable) writable_ = true;
  if (ready & (Poller::kReadable | Poller::kHangup)) readable_ = true;
  Service();
}

void UpstreamConnection::ReadResponses() {
  char buf[kReadChunk];
  // Bounded per wakeup, so one busy backend cannot starve the loop.
  for (int budget = 16; budget > 0; --budget) {
    const iovec iov{buf, sizeof buf};
    const ssize_t n = pool_->loop()->poller().Readv(fd_, &iov, 1);
    if (n > 0) {
      // Frames are matched where they lie: in buf, unless a partial one
      // from the last read waits in in_.
      ssize_t consumed;
      if (in_.empty()) {
        consumed = MatchResponses(buf, static_cast<size_t>(n));
        if (consumed < 0) return;
        in_.append(buf + consumed, static_cast<size_t>(n - consumed));
      } else {
        in_.append(buf, static_cast<size_t>(n));
        consumed = MatchResponses(in_.data(), in_.size());
        if (consumed < 0) return;
        in_.erase(0, static_cast<size_t>(consumed));
      }
      if (phase_ != Phase::kConnected) return;
      if (static_cast<size_t>(n) < sizeof buf) {
        readable_ = false;
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      readable_ = false;
      return;
    }
    Fail(UpstreamError::kReset,
         n == 0 ? std::string("the backend closed the connection") : absl::StrCat("recv: ", std::strerror(errno)));
    return;
  }
  // Budget spent: edge-triggered readiness will not come again for these
  // bytes; read on at the end of this turn.
  pool_->MarkDirty(this);
}

ssize_t UpstreamConnection::MatchResponses(const char* data, size_t len) {
  size_t pos = 0;
  BackendShard& shard = *backend_->shard;
  const int64_t now_ns = pool_->loop()->now_ns();
  bool answered = false;
  while (pos < len) {
    const FrameScan scan = ScanFrame(absl::string_view(data + pos, len - pos));
    if (scan.status == FrameScan::Status::kNeedMore) break;
    if (scan.status == FrameScan::Status::kError || scan.frame_size == kHeaderSize || scan.skip != 0) {
      Fail(UpstreamError::kProtocol, "the backend sent a malformed frame");
      return -1;
    }
    if (written_count_ == 0) {
      Fail(UpstreamError::kProtocol, "the backend answered a request it was not sent");
      return -1;
    }
    const absl::string_view frame(data + pos, scan.frame_size);
    pos += scan.frame_size;
    Entry entry = std::move(fifo_.front());
    fifo_.pop_front();
    --written_count_;
    answered = true;
    if (entry.timed_out) {
      --timed_out_count_;  // late: swallowed
      continue;
    }
    shard.inflight.Add(-1);
    shard.responses.Add();
    // The wakeup's clock: the answer arrived by then, and a clock read per
    // response would cost more than the rest of the match.
    shard.duration.Observe(static_cast<double>(now_ns - entry.written_ns) * 1e-9);
    pool_->Succeeded(backend_);
    pool_->Deliver(entry.link, entry.seq, frame);
  }
  if (answered) pool_->Pump(backend_);
  return static_cast<ssize_t>(pos);
}

void UpstreamConnection::Expire(int64_t now_ns) {
  if (phase_ == Phase::kConnecting && now_ns >= connect_deadline_ns_) {
    pool_->UnwatchConnect(fd_);
    Fail(UpstreamError::kConnect, "connect: timed out");
    return;
  }
  const int64_t timeout = absl::ToInt64Nanoseconds(pool_->options().timeout);
  bool expired = false;
  while (timed_out_count_ < written_count_ && fifo_[timed_out_count_].submit_ns + timeout <= now_ns) {
    Entry& entry = fifo_[timed_out_count_++];
    entry.timed_out = true;
    backend_->shard->inflight.Add(-1);
    backend_->shard->errors[static_cast<int>(UpstreamError::kTimeout)].Add();
    pool_->DeliverError(entry.link, entry.seq, UpstreamError::kTimeout);
    entry.link.reset();
    expired = true;
  }
  if (expired) pool_->Failed(backend_, UpstreamError::kTimeout, "a request timed out");
  if (phase_ != Phase::kIdle && written_count_ < fifo_.size() && fifo_[written_count_].submit_ns + timeout <= now_ns) {
    // The backend does not even take our bytes: give up on this connection;
    // what it never got goes elsewhere.
    Fail(UpstreamError::kTimeout, "the backend stopped reading");
  }
}

int64_t UpstreamConnection::NextDeadlineNs() const {
  int64_t deadline = INT64_MAX;
  if (phase_ == Phase::kConnecting) deadline = connect_deadline_ns_;
  const int64_t timeout = absl::ToInt64Nanoseconds(pool_->options().timeout);
  if (timed_out_count_ < fifo_.size()) deadline = std::min(deadline, fifo_[timed_out_count_].submit_ns + timeout);
  if (phase_ == Phase::kIdle && retry_at_ns_ != 0) deadline = std::min(deadline, retry_at_ns_);
  return deadline;
}

void UpstreamConnection::Fail(UpstreamError error, std::string detail) {
  CloseFd();
  readable_ = writable_ = false;
  SetPhase(Phase::kIdle);
  retry_at_ns_ = pool_->loop()->now_ns() + kReconnectDelayNs;
  in_.clear();
  // Take everything off the connection first: delivering may make clients
  // submit again, and re-dispatching may pick this backend's other connections.
  std::deque<Entry> fifo;
  fifo.swap(fifo_);
  std::string out;
  out.swap(out_);
  const uint64_t out_base = out_base_;
  const size_t written = written_count_;
  const size_t timed_out = timed_out_count_;
  written_count_ = timed_out_count_ = 0;
  out_base_ = sent_ = appended_ = 0;
  frames_since_flush_ = 0;
  BackendShard& shard = *backend_->shard;
  const UpstreamError written_error = error == UpstreamError::kConnect ? UpstreamError::kReset : error;
  if (error == UpstreamError::kConnect) shard.errors[static_cast<int>(UpstreamError::kConnect)].Add();
  pool_->Failed(backend_, error, detail);
  for (size_t i = 0; i < fifo.size(); ++i) {
    Entry& entry = fifo[i];
    if (i < timed_out) continue;  // answered already
    if (i < written) {
      shard.inflight.Add(-1);
      shard.errors[static_cast<int>(written_error)].Add();
      pool_->DeliverError(entry.link, entry.seq, written_error);
      continue;
    }
    shard.pending.Add(-1);
    UpstreamRequest request;
    request.link = std::move(entry.link);
    request.seq = entry.seq;
    request.submit_ns = entry.submit_ns;
    request.frame.assign(out, static_cast<size_t>(entry.start - out_base),
                         static_cast<size_t>(entry.end - entry.start));
    pool_->Redispatch(backend_, std::move(request));
  }
  pool_->Pump(backend_);  // its other connections take what waits; a drain may be over
}

void UpstreamConnection::Shutdown() {
  if (phase_ == Phase::kIdle && fifo_.empty()) return;
  Fail(UpstreamError::kReset, "removed");
}

void UpstreamConnection::OnTriggerModeChanged() {
  if (!registered_) return;
  if (!pool_->loop()->poller().Modify(fd_, this, Poller::kReadable | Poller::kWritable).ok()) {
    Fail(UpstreamError::kReset, "cannot re-register with the poller");
    return;
  }
  // Bytes that arrived before the switch raise no new edge: look for them.
  readable_ = writable_ = true;
  pool_->MarkDirty(this);
}

void UpstreamConnection::MoveToNewPoller(Poller::Leftovers leftovers) {
  if (!registered_) return;
  Poller& poller = pool_->loop()->poller();
  poller.Carry(fd_, std::move(leftovers.unread), leftovers.eof, leftovers.error);
  if (!leftovers.unsent.empty()) {
    // The retired back-end took these bytes but never sent them: they are
    // the tail of what we counted as sent.
    sent_ -= leftovers.unsent.size();
    size_t written = 0;
    while (written < fifo_.size() && fifo_[written].end <= sent_) ++written;
    BackendShard& shard = *backend_->shard;
    for (size_t i = written; i < written_count_; ++i) {
      if (!fifo_[i].timed_out) {
        shard.inflight.Add(-1);
        shard.pending.Add(1);
      }
    }
    written_count_ = std::max(written, timed_out_count_);
    if (sent_ < out_base_) {
      out_.insert(0, leftovers.unsent.substr(0, static_cast<size_t>(out_base_ - sent_)));
      out_base_ = sent_;
    }
  }
  if (!poller.Add(fd_, this, Poller::kReadable | Poller::kWritable).ok()) {
    Fail(UpstreamError::kReset, "cannot register with the new poller");
    return;
  }
  readable_ = writable_ = true;
  pool_->MarkDirty(this);
}

}  // namespace gateway
