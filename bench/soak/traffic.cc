// VerifiedTraffic runs one level-triggered epoll loop over its connections:
// each is topped up to a pipeline depth it redraws now and then, within a
// per-connection byte bound and an optional global byte rate, and every
// answer is checked as it arrives. Now and then a few connections stop
// reading for a while and pipeline megabytes meanwhile, so the gateway's
// backpressure (queued output, paused reading) is part of the mix. A
// connection that breaks is counted (its written, unanswered requests as
// lost) and replaced. On a stop it issues nothing new, reads again, and waits,
// bounded, for the answers still owed.
#include "bench/soak/traffic.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

namespace soak {
namespace {

constexpr int kConnectTimeoutMs = 5000;
constexpr int kMaxLogged = 20;

const char* ResultName(FrameStream::Result r) {
  switch (r) {
    case FrameStream::Result::kOk: return "ok";
    case FrameStream::Result::kEof: return "EOF";
    case FrameStream::Result::kReset: return "reset";
    case FrameStream::Result::kError: return "socket error";
    case FrameStream::Result::kCorrupt: return "corrupt";
  }
  return "?";
}

}  // namespace

struct VerifiedTraffic::Slot {
  std::unique_ptr<FrameStream> stream;
  int depth = 1;
  uint32_t next_size = 0;  // the next request's payload size, once drawn
  bool registered = false;
  uint32_t interest = 0;              // registered epoll events
  Clock::time_point stalled_until{};  // not reading until then; epoch = reading
  Clock::time_point next_stall_check{};
};

VerifiedTraffic::VerifiedTraffic(const SoakTarget& target, const TrafficOptions& options)
    : Scenario(target, 1),
      options_(options),
      rate_(options.mbps * 1e6),
      burst_(std::max(rate_ * 0.05, 4.0 * (kMaxPayload + kHeaderSize))),
      tokens_(burst_),
      slots_(static_cast<size_t>(options.conns)) {
  if (options.stall_fraction > 0) {
    max_stalled_ = std::max(1, static_cast<int>(options.conns * options.stall_fraction));
  }
}

VerifiedTraffic::~VerifiedTraffic() { Join(); }

void VerifiedTraffic::Run() {
  SoakCounters& c = counters();
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    SOAK_LOG("traffic: epoll_create1: %s\n", strerror(errno));
    c.verified_connect_errors.fetch_add(1);
    return;
  }
  refilled_ = Clock::now();
  bool draining = false;
  Clock::time_point drain_deadline{};
  size_t first = 0;
  for (;;) {
    const Clock::time_point now = Clock::now();
    if (!draining && stopping()) {
      draining = true;
      drain_deadline = now + std::chrono::seconds(options_.drain_seconds);
    }
    if (draining && Owed() == 0) break;
    if (draining && now >= drain_deadline) {
      c.lost.fetch_add(Owed());
      SOAK_LOG("traffic: %zu answer(s) still owed %d s after the stop: counted as lost\n", Owed(),
               options_.drain_seconds);
      break;
    }
    if (rate_ > 0) {
      tokens_ = std::min(burst_, tokens_ + rate_ * std::chrono::duration<double>(now - refilled_).count());
      refilled_ = now;
    }
    bool throttled = false;
    // Under a byte-rate cap the first connections served take the tokens:
    // start one further each round so none starves (and idles out).
    first = (first + 1) % slots_.size();
    for (size_t k = 0; k < slots_.size(); ++k) {
      const size_t i = (first + k) % slots_.size();
      Slot& slot = slots_[i];
      if (!slot.stream && (draining || !Open(slot))) continue;
      UpdateStall(slot, now, draining);
      if (!draining && !TopUp(slot)) throttled = true;
      Arm(slot, i);
    }
    epoll_event events[256];
    const int n = epoll_wait(epoll_fd_, events, 256, throttled ? 5 : stalled_ > 0 ? 20 : 100);
    if (n < 0 && errno != EINTR) {
      SOAK_LOG("traffic: epoll_wait: %s\n", strerror(errno));
      break;
    }
    for (int e = 0; e < n; ++e) {
      Slot& slot = slots_[events[e].data.u64];
      if (slot.stream) OnEvent(slot, events[e].events);
    }
  }
  slots_.clear();  // FIN: every answer owed has been read
  close(epoll_fd_);
}

bool VerifiedTraffic::Open(Slot& slot) {
  const int fd = ConnectTo(target_.data, kConnectTimeoutMs);
  if (fd < 0) {
    counters().verified_connect_errors.fetch_add(1);
    if (logged_++ < kMaxLogged) SOAK_LOG("traffic: connect: %s\n", strerror(errno));
    return false;
  }
  slot.stream = std::make_unique<FrameStream>(target_.pattern, fd);
  slot.depth = 1 + static_cast<int>(rng_() % static_cast<uint64_t>(options_.max_pipeline));
  slot.registered = false;
  slot.next_stall_check = Clock::now() + std::chrono::milliseconds(rng_() % 8000);
  return true;
}

void VerifiedTraffic::UpdateStall(Slot& slot, Clock::time_point now, bool draining) {
  const bool stalled = slot.stalled_until != Clock::time_point{};
  if (stalled && (draining || now >= slot.stalled_until)) {
    slot.stalled_until = Clock::time_point{};
    --stalled_;
  } else if (!stalled && !draining && now >= slot.next_stall_check) {
    slot.next_stall_check = now + std::chrono::milliseconds(2000 + rng_() % 6000);
    if (stalled_ < max_stalled_ && rng_() % 3 == 0) {
      slot.stalled_until = now + std::chrono::milliseconds(500 + rng_() % 7500);
      ++stalled_;
      counters().verified_stalls.fetch_add(1);
    }
  }
}

bool VerifiedTraffic::TopUp(Slot& slot) {
  FrameStream& s = *slot.stream;
  const bool stalled = slot.stalled_until != Clock::time_point{};
  const size_t depth = stalled ? SIZE_MAX : static_cast<size_t>(slot.depth);
  const uint64_t bytes = stalled ? options_.stall_inflight_bytes : options_.max_inflight_bytes;
  while (s.outstanding() < depth && s.outstanding_bytes() < bytes) {
    // A size drawn is kept until the tokens allow it, so a cap does not bias
    // the mix towards small frames.
    if (slot.next_size == 0) slot.next_size = PickPayloadSize(rng_);
    const uint32_t size = slot.next_size;
    if (rate_ > 0 && tokens_ < size + kHeaderSize) return false;
    tokens_ -= size + kHeaderSize;
    slot.next_size = 0;
    s.Enqueue(size, SoakPattern::RandomOffset(rng_));
  }
  return true;
}

void VerifiedTraffic::Arm(Slot& slot, size_t index) {
  FrameStream& s = *slot.stream;
  if (s.wants_write()) {
    uint64_t written = 0;
    const FrameStream::Result r = s.Send(&written);
    counters().frames_sent.fetch_add(written);
    if (r != FrameStream::Result::kOk) {
      Drop(slot, r);
      return;
    }
  }
  const bool reading = slot.stalled_until == Clock::time_point{};
  const uint32_t interest = (reading ? EPOLLIN : 0u) | (s.wants_write() ? EPOLLOUT : 0u);
  if (slot.registered && interest == slot.interest) return;
  epoll_event ev{};
  ev.events = interest;
  ev.data.u64 = index;
  if (epoll_ctl(epoll_fd_, slot.registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s.fd(), &ev) != 0) {
    Drop(slot, FrameStream::Result::kError);
    return;
  }
  slot.registered = true;
  slot.interest = interest;
}

void VerifiedTraffic::OnEvent(Slot& slot, uint32_t events) {
  SoakCounters& c = counters();
  FrameStream& s = *slot.stream;
  FrameStream::Result r = FrameStream::Result::kOk;
  if (events & EPOLLOUT) {
    uint64_t written = 0;
    r = s.Send(&written);
    c.frames_sent.fetch_add(written);
  }
  if (r == FrameStream::Result::kOk && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
    uint64_t answered = 0;
    const uint64_t bytes_before = s.outstanding_bytes();
    r = s.Receive(&answered);
    if (answered > 0) {
      c.frames_answered.fetch_add(answered);
      c.bytes_answered.fetch_add(bytes_before - s.outstanding_bytes());
      if (rng_() % 64 == 0) slot.depth = 1 + static_cast<int>(rng_() % static_cast<uint64_t>(options_.max_pipeline));
    }
  }
  if (r != FrameStream::Result::kOk) Drop(slot, r);
}

void VerifiedTraffic::Drop(Slot& slot, FrameStream::Result why) {
  SoakCounters& c = counters();
  FrameStream& s = *slot.stream;
  if (why == FrameStream::Result::kCorrupt) {
    c.corrupt.fetch_add(1);
    if (logged_++ < kMaxLogged) SOAK_LOG("traffic: CORRUPT on fd %d: %s\n", s.fd(), s.error().c_str());
  } else {
    c.verified_conns_broken.fetch_add(1);
    c.lost.fetch_add(s.in_flight());
    if (logged_++ < kMaxLogged) {
      SOAK_LOG("traffic: connection ended (%s, errno %d) with %zu request(s) in flight\n", ResultName(why),
               s.last_errno(), s.in_flight());
    }
  }
  if (slot.stalled_until != Clock::time_point{}) --stalled_;
  slot = Slot{};  // close(), which also leaves the epoll set
}

size_t VerifiedTraffic::Owed() const {
  size_t owed = 0;
  for (const Slot& slot : slots_) owed += slot.stream ? slot.stream->in_flight() : 0;
  return owed;
}

void Churn::Run() {
  RunAtRate(per_second_, [this] { OneConnection(); });
}

void Churn::OneConnection() {
  SoakCounters& c = counters();
  const int fd = ConnectTo(target_.data, kConnectTimeoutMs);
  if (fd < 0) {
    c.churn_connect_errors.fetch_add(1);
    if (logged_++ < kMaxLogged) SOAK_LOG("churn: connect: %s\n", strerror(errno));
    return;
  }
  FrameStream s(target_.pattern, fd);
  const bool half_close = rng_() % 2 == 0;
  s.Enqueue(PickPayloadSize(rng_), SoakPattern::RandomOffset(rng_));
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
  bool shut = false;
  FrameStream::Result r = FrameStream::Result::kOk;
  while (s.answered() == 0 && r == FrameStream::Result::kOk && Clock::now() < deadline) {
    r = Pump(s, 100);
    if (half_close && !shut && !s.wants_write() && r == FrameStream::Result::kOk) {
      shut = shutdown(fd, SHUT_WR) == 0;
    }
  }
  if (s.answered() == 0) {
    if (r == FrameStream::Result::kCorrupt) {
      c.churn_corrupt.fetch_add(1);
    } else {
      c.churn_lost.fetch_add(1);
    }
    if (logged_++ < kMaxLogged) {
      SOAK_LOG("churn: no answer (%s, errno %d) %s\n", ResultName(r), s.last_errno(), s.error().c_str());
    }
    return;
  }
  c.frames_sent.fetch_add(1);
  c.frames_answered.fetch_add(1);
  if (!half_close) {
    c.churn_ok.fetch_add(1);
    return;  // nothing unread: the close is a FIN
  }
  // After our FIN and the answer, the gateway must close with EOF and send
  // nothing more.
  while (r == FrameStream::Result::kOk && Clock::now() < deadline) r = Pump(s, 100);
  if (r == FrameStream::Result::kEof) {
    c.churn_ok.fetch_add(1);
  } else if (r == FrameStream::Result::kCorrupt) {
    c.churn_corrupt.fetch_add(1);
    if (logged_++ < kMaxLogged) SOAK_LOG("churn: bytes after the answer: %s\n", s.error().c_str());
  } else {
    c.churn_bad_end.fetch_add(1);
    if (logged_++ < kMaxLogged) {
      SOAK_LOG("churn: after FIN and answer: %s (errno %d) instead of EOF\n",
               r == FrameStream::Result::kOk ? "no EOF in 10 s" : ResultName(r), s.last_errno());
    }
  }
}

}  // namespace soak
