// The reconnecting half of Worker: what a client that obeys the contract
// does when a connection ends (reopen, resend the unanswered requests) or a
// connect fails (retry after a short backoff, bounded in attempts).
#include <errno.h>
#include <unistd.h>

#include <algorithm>
#include <limits>
#include <random>

#include "bench/worker.h"
#include "bench/worker_conn.h"

namespace bench {
namespace {

constexpr int64_t kFirstBackoffNs = 5'000'000;  // 5 ms, doubling per failure
constexpr int64_t kMaxBackoffNs = 250'000'000;  // up to 250 ms
constexpr int64_t kSettlePollNs = 10'000'000;

int64_t BackoffNs(uint32_t failures, uint32_t salt) {
  const int64_t base = std::min(kMaxBackoffNs, kFirstBackoffNs << std::min<uint32_t>(failures - 1, 10));
  // ±25% jitter so refused clients do not come back in lockstep.
  std::minstd_rand rng(salt * 2654435761u + failures);
  return base * 3 / 4 + static_cast<int64_t>(rng() % static_cast<uint32_t>(base / 2 + 1));
}

}  // namespace

void Worker::Lost(Conn& c, ErrorKind kind) {
  if (!options_.reconnect) return Fail(c, kind);
  Bump(kind == kReset ? counters_.resets : counters_.eofs);
  // Everything written (even in part) but unanswered goes out again.
  Bump(counters_.resent, c.out_seq - c.recv_seq + (c.out_pos > 0 ? 1 : 0));
  close(c.fd);
  c.fd = -1;
  c.out_seq = c.recv_seq;
  c.out_pos = 0;
  c.recv_pos = 0;
  c.recv_offset = PayloadPattern::Offset(c.id, c.recv_seq);
  c.want_write = false;
  Bump(counters_.reconnects);
  if (c.progressed) {
    c.failures = 0;
    return Open(c);
  }
  // Ended before answering anything: back off as for a failed connect, so
  // a server that accepts and closes at once cannot spin the client.
  c.state = State::kConnecting;
  ConnectFailed(c, 0);
}

void Worker::ConnectFailed(Conn& c, int err) {
  c.progressed = false;
  if (!options_.reconnect) return Fail(c, kConnect);
  if (err == ECONNREFUSED) Bump(counters_.refused);
  if (err == ECONNRESET || err == EPIPE) Bump(counters_.resets);
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
  if (++c.failures >= static_cast<uint32_t>(std::max(1, options_.reconnect_attempts))) return Fail(c, kConnect);
  c.state = State::kBackoff;
  c.retry_ns = NowNs() + BackoffNs(c.failures, c.id);
  backoff_.push_back(c.index);
}

int64_t Worker::RetryDue(int64_t now) {
  int64_t next = std::numeric_limits<int64_t>::max();
  if (backoff_.empty()) return next;
  std::vector<uint32_t> due;
  std::erase_if(backoff_, [&](uint32_t i) {
    const Conn& c = conns_[i];
    if (c.state != State::kBackoff) return true;
    if (c.retry_ns <= now) {
      due.push_back(i);
      return true;
    }
    next = std::min(next, c.retry_ns);
    return false;
  });
  for (uint32_t i : due) Open(conns_[i]);  // may push onto backoff_ again
  for (uint32_t i : backoff_) next = std::min(next, conns_[i].retry_ns);
  return next;
}

uint64_t Worker::Outstanding() const {
  uint64_t n = 0;
  for (const Conn& c : conns_) {
    if (c.state != State::kDead && c.state != State::kNew) n += c.queued - c.recv_seq;
  }
  return n;
}

void Worker::Settle() {
  const int64_t deadline = clock_.end_ns + options_.settle_ns;
  for (int64_t now = NowNs(); now < deadline && !Stopped() && Outstanding() > 0; now = NowNs()) {
    Poll(std::min({deadline - now, kSettlePollNs, std::max<int64_t>(RetryDue(now) - now, 0)}));
  }
  Bump(counters_.lost_requests, Outstanding());
}

}  // namespace bench
