// Sequence numbers: request 0 of every connection is the proof sent while
// connecting; traffic requests are 1, 2, ... Per connection:
//   [0, recv_seq)        answered (validated)
//   [recv_seq, out_seq)  fully written, awaiting their responses
//   [out_seq, queued)    allowed out; out_pos bytes of out_seq written so far
// The payload of request seq starts at PayloadPattern::Offset(id, seq), so the
// writer and the validator agree without storing anything per request.
#include "bench/worker.h"
#include "bench/worker_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "bench/targets.h"

namespace bench {
namespace {

constexpr int kMaxEvents = 1024;
constexpr size_t kReadBufSize = 256 * 1024;
constexpr int kMaxIov = 1024;
constexpr int64_t kMaxWaitNs = 100'000'000;  // re-check the clock at least this often
// An upstream-mode gateway answers a request its backend failed with an empty
// frame; no real response of this protocol is empty.
constexpr char kErrorFrameHeader[PayloadPattern::kHeaderSize + 1] = "00000";
// Conn::header_match bits: what the response header read so far can still be.
constexpr uint8_t kMatchExpected = 1;
constexpr uint8_t kMatchErrorFrame = 2;

timespec ToTimespec(int64_t ns) {
  ns = std::max<int64_t>(ns, 0);
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

}  // namespace

const char* ErrorKindName(int kind) {
  static const char* const kNames[kNumErrorKinds] = {"mismatch", "reset", "eof", "connect", "timeout", "duplicate"};
  return kind >= 0 && kind < kNumErrorKinds ? kNames[kind] : "?";
}

int64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

Worker::Worker(const WorkerOptions& options, const PayloadPattern& payload, uint32_t first_conn, int num_conns)
    : options_(options),
      payload_(payload),
      frame_size_(static_cast<uint32_t>(payload.frame_size())),
      conns_(static_cast<size_t>(num_conns)),
      send_ns_(static_cast<size_t>(num_conns) * static_cast<size_t>(options.pipeline), 0),
      read_buf_(new char[kReadBufSize]) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 0; i < num_conns; ++i) {
    Conn& c = conns_[static_cast<size_t>(i)];
    c.id = first_conn + static_cast<uint32_t>(i);
    c.index = static_cast<uint32_t>(i);
    c.recv_offset = PayloadPattern::Offset(c.id, 0);
  }
}

Worker::~Worker() {
  CloseAll();
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

void Worker::CloseAll() {
  for (Conn& c : conns_) {
    if (c.fd >= 0) close(c.fd);
    c.fd = -1;
    if (c.state != State::kDead) c.state = State::kDead;
  }
}

void Worker::Fail(Conn& c, ErrorKind kind) {
  if (c.state == State::kDead) return;
  Bump(counters_.errors[kind]);
  if (c.recv_seq == 0) --connecting_;  // never proven: still counted as connecting
  if (options_.reconnect) Bump(counters_.failed, c.queued - c.recv_seq);
  counters_.lost.store(counters_.lost.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  if (c.fd >= 0) close(c.fd);  // also leaves the epoll set
  c.fd = -1;
  c.state = State::kDead;
}

void Worker::Open(Conn& c) {
  if (c.state == State::kNew) ++connecting_;
  c.state = State::kConnecting;
  Endpoint target;
  if (options_.targets != nullptr) {
    if (!options_.targets->Pick(&target, c.failures > 0)) return ConnectFailed(c, ECONNREFUSED);  // none
  } else {
    target.address = options_.address;
    target.address_len = options_.address_len;
  }
  c.fd = socket(target.address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c.fd < 0) return Fail(c, kConnect);
  int one = 1;
  setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.ptr = &c;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev) < 0) return Fail(c, kConnect);
  if (connect(c.fd, reinterpret_cast<const sockaddr*>(&target.address), target.address_len) == 0) {
    return OnConnected(c);
  }
  if (errno != EINPROGRESS) return ConnectFailed(c, errno);
}

void Worker::OnConnected(Conn& c) {
  c.progressed = false;
  if (c.recv_seq == 0) {
    c.state = State::kProving;
    c.queued = std::max<uint64_t>(c.queued, 1);  // the proof request
    return Flush(c);
  }
  // A reconnect: resend what got no response, then go on with traffic.
  c.state = State::kReady;
  Flush(c);
  if (traffic_ && c.state == State::kReady) Refill(c, NowNs());
}

void Worker::Connect(int64_t deadline_ns) {
  const int limit = std::max(1, options_.connect_in_flight);
  size_t next = 0;
  for (;;) {
    while (connecting_ < limit && next < conns_.size()) Open(conns_[next++]);
    if (connecting_ == 0 && next == conns_.size()) break;
    const int64_t now = NowNs();
    if (now >= deadline_ns || Stopped()) {
      for (Conn& c : conns_) {
        if (c.state == State::kNew) {  // never opened: counts as a timeout too
          c.state = State::kConnecting;
          ++connecting_;
        }
        if (c.state != State::kDead && c.recv_seq == 0) Fail(c, kTimeout);
      }
      break;
    }
    const int64_t retry = RetryDue(now);
    Poll(std::min({deadline_ns - now, kMaxWaitNs, std::max<int64_t>(retry - now, 0)}));
  }
}

void Worker::Poll(int64_t wait_ns) {
  epoll_event events[kMaxEvents];
  const timespec wait = ToTimespec(wait_ns);
  const int n = epoll_pwait2(epoll_fd_, events, kMaxEvents, &wait, nullptr);
  for (int i = 0; i < n; ++i) Dispatch(*static_cast<Conn*>(events[i].data.ptr), events[i].events);
}

void Worker::Dispatch(Conn& c, uint32_t events) {
  if (c.state == State::kDead) return;
  if (c.state == State::kConnecting) {
    if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (err != 0) return ConnectFailed(c, err);
    OnConnected(c);
    if (c.state == State::kDead) return;
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
    HandleReadable(c, (events & (EPOLLRDHUP | EPOLLHUP)) != 0);
    if (c.state == State::kDead) return;
  }
  if ((events & EPOLLOUT) && c.want_write) {
    c.want_write = false;
    Flush(c);
  }
}

void Worker::HandleReadable(Conn& c, bool hangup) {
  for (;;) {
    const ssize_t n = recv(c.fd, read_buf_.get(), kReadBufSize, 0);
    if (n > 0) {
      if (!Consume(c, read_buf_.get(), static_cast<size_t>(n))) {
        // Bytes with no request awaiting them: in reconnecting mode a
        // duplicate (say, a response delivered twice), else a mismatch.
        const bool unexpected = c.recv_pos == 0 && c.recv_seq >= c.out_seq;
        return Fail(c, options_.reconnect && unexpected ? kDuplicate : kMismatch);
      }
      // A short read means the socket was drained; edge-triggered epoll
      // reports the next arrival, so the EAGAIN recv can be skipped. Not
      // when the peer's FIN came with this edge: no later edge would report
      // the EOF behind the data.
      if (static_cast<size_t>(n) < kReadBufSize && !hangup) break;
      continue;
    }
    if (n == 0) return Lost(c, kEof);
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return Lost(c, kReset);
  }
  if (traffic_) Refill(c, NowNs());
}

bool Worker::Consume(Conn& c, const char* data, size_t n) {
  const size_t size = static_cast<size_t>(payload_.size());
  while (n > 0) {
    // A response may only follow a request that has been written in full.
    if (c.recv_pos == 0 && c.recv_seq >= c.out_seq) return false;
    size_t take;
    if (c.recv_pos < PayloadPattern::kHeaderSize) {
      take = std::min<size_t>(n, PayloadPattern::kHeaderSize - c.recv_pos);
      if (!MatchHeader(c, data, take)) return false;
      if (c.recv_pos + take == PayloadPattern::kHeaderSize && !(c.header_match & kMatchExpected)) {
        // A whole error frame in place of response recv_seq: that request is answered.
        data += take;
        n -= take;
        c.recv_pos = 0;
        c.recv_offset = PayloadPattern::Offset(c.id, ++c.recv_seq);
        Bump(counters_.error_frames);
        continue;
      }
    } else {
      const size_t at = c.recv_pos - PayloadPattern::kHeaderSize;
      take = std::min(n, size - at);
      if (std::memcmp(data, payload_.ResponsePayload(c.recv_offset) + at, take) != 0) return false;
    }
    c.recv_pos += static_cast<uint32_t>(take);
    data += take;
    n -= take;
    if (c.recv_pos == frame_size_) {
      const uint64_t seq = c.recv_seq++;
      c.recv_pos = 0;
      c.recv_offset = PayloadPattern::Offset(c.id, c.recv_seq);
      c.progressed = true;
      OnResponse(c, seq, NowNs());
    }
  }
  return true;
}

bool Worker::MatchHeader(Conn& c, const char* data, size_t n) {
  if (c.recv_pos == 0) {
    // The proof (request 0) must be a real response.
    const bool error_ok = options_.accept_error_frames && c.recv_seq > 0;
    c.header_match = kMatchExpected | (error_ok ? kMatchErrorFrame : 0);
  }
  if (std::memcmp(data, payload_.header() + c.recv_pos, n) != 0) c.header_match &= ~kMatchExpected;
  if (std::memcmp(data, kErrorFrameHeader + c.recv_pos, n) != 0) c.header_match &= ~kMatchErrorFrame;
  return c.header_match != 0;
}

void Worker::OnResponse(Conn& c, uint64_t seq, int64_t now) {
  if (seq == 0) {  // the proof
    if (c.state == State::kProving) {
      c.state = State::kReady;
      --connecting_;
      counters_.established.store(counters_.established.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
    return;
  }
  ++completed_;
  if (options_.mode == Mode::kOpenLoop) {
    const int64_t intended = IntendedNs(c, seq);
    if (intended >= clock_.measure_ns && intended < clock_.end_ns) {
      histogram_.Record(static_cast<uint64_t>(std::max<int64_t>(now - intended, 0)));
    }
    if (now >= clock_.measure_ns && now < clock_.end_ns) ++measured_;
    return;
  }
  if (now >= clock_.measure_ns && now < clock_.end_ns) {
    ++measured_;
    const size_t slot = static_cast<size_t>(c.index) * static_cast<size_t>(options_.pipeline) +
                        static_cast<size_t>(seq % static_cast<uint64_t>(options_.pipeline));
    histogram_.Record(static_cast<uint64_t>(std::max<int64_t>(now - send_ns_[slot], 0)));
  }
}

int64_t Worker::IntendedNs(const Conn& c, uint64_t seq) const {
  // This worker's k-th scheduled request goes to connection k % n.
  const double k = static_cast<double>((seq - 1) * conns_.size() + c.index);
  return clock_.start_ns + static_cast<int64_t>(k * 1e9 / options_.rate);
}

void Worker::Refill(Conn& c, int64_t now) {
  if (c.state != State::kReady || now >= clock_.end_ns) return;
  uint64_t target = c.recv_seq + static_cast<uint64_t>(options_.pipeline);
  if (options_.mode == Mode::kOpenLoop) target = std::min(target, c.scheduled);
  if (target <= c.queued) return;
  const uint64_t p = static_cast<uint64_t>(options_.pipeline);
  int64_t* ring = &send_ns_[static_cast<size_t>(c.index) * p];
  for (uint64_t s = c.queued; s < target; ++s) ring[s % p] = now;
  c.queued = target;
  if (!c.want_write) Flush(c);
}

void Worker::Flush(Conn& c) {
  const uint32_t size = static_cast<uint32_t>(payload_.size());
  iovec iov[kMaxIov];
  for (;;) {
    int k = 0;
    size_t total = 0;
    uint64_t seq = c.out_seq;
    uint32_t pos = c.out_pos;
    while (seq < c.queued && k + 2 <= kMaxIov) {
      if (pos < PayloadPattern::kHeaderSize) {
        iov[k++] = {const_cast<char*>(payload_.header()) + pos, PayloadPattern::kHeaderSize - pos};
      }
      const uint32_t at = std::max<uint32_t>(pos, PayloadPattern::kHeaderSize) - PayloadPattern::kHeaderSize;
      iov[k++] = {const_cast<char*>(payload_.RequestPayload(PayloadPattern::Offset(c.id, seq))) + at, size - at};
      total += frame_size_ - pos;
      pos = 0;
      ++seq;
    }
    if (k == 0) return;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(k);
    const ssize_t n = sendmsg(c.fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        c.want_write = true;
        return;
      }
      if (errno == EINTR) continue;
      return Lost(c, kReset);
    }
    // Advance (out_seq, out_pos) past the n bytes written.
    uint64_t left = static_cast<uint64_t>(n);
    while (left > 0) {
      const uint32_t rest = frame_size_ - c.out_pos;
      if (left >= rest) {
        left -= rest;
        ++c.out_seq;
        c.out_pos = 0;
      } else {
        c.out_pos += static_cast<uint32_t>(left);
        left = 0;
      }
    }
    if (static_cast<size_t>(n) < total) {  // the socket is full
      c.want_write = true;
      return;
    }
  }
}

void Worker::ScheduleDue(int64_t now) {
  const uint64_t n = conns_.size();
  const int64_t horizon = std::min(now, clock_.end_ns - 1);
  if (horizon < clock_.start_ns) return;
  const uint64_t due = static_cast<uint64_t>(static_cast<double>(horizon - clock_.start_ns) * options_.rate / 1e9) + 1;
  for (; issued_ < due; ++issued_) {
    Conn& c = conns_[issued_ % n];
    c.scheduled = issued_ / n + 2;  // requests 1 .. issued_/n + 1 are due
    Refill(c, now);
  }
}

void Worker::Run(const RunClock& clock) {
  clock_ = clock;
  // Open loop sleeps until each request's due time: without this the default
  // 50 us timer slack would send requests late (the lateness still counts as
  // latency, but it is the client's, not the server's).
  if (options_.mode == Mode::kOpenLoop) prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  traffic_ = options_.mode != Mode::kIdle;
  if (options_.mode == Mode::kClosedLoop) {
    const int64_t now = NowNs();
    for (Conn& c : conns_) Refill(c, now);
  }
  for (;;) {
    int64_t now = NowNs();
    counters_.completed.store(completed_, std::memory_order_relaxed);
    counters_.measured.store(measured_, std::memory_order_relaxed);
    if (now >= clock_.end_ns || Stopped()) break;
    int64_t wait_ns = std::min(clock_.end_ns - now, kMaxWaitNs);
    if (options_.mode == Mode::kOpenLoop && !conns_.empty()) {
      ScheduleDue(now);
      const double next = static_cast<double>(issued_) * 1e9 / options_.rate;
      wait_ns = std::min(wait_ns, clock_.start_ns + static_cast<int64_t>(next) - now);
    }
    Poll(std::min(wait_ns, std::max<int64_t>(RetryDue(now) - now, 0)));
  }
  if (options_.reconnect) Settle();
  counters_.completed.store(completed_, std::memory_order_relaxed);
  counters_.measured.store(measured_, std::memory_order_relaxed);
  if (options_.mode == Mode::kOpenLoop) CountUnfinished();
  traffic_ = false;
}

void Worker::CountUnfinished() {
  for (const Conn& c : conns_) {
    if (c.state != State::kReady) continue;
    for (uint64_t seq = c.recv_seq; seq < c.scheduled; ++seq) {
      const int64_t intended = IntendedNs(c, seq);
      if (intended < clock_.measure_ns || intended >= clock_.end_ns) continue;
      histogram_.Record(static_cast<uint64_t>(clock_.end_ns - intended));
      ++unfinished_;
    }
  }
}

}  // namespace bench
