// Per-reactor counters and histograms. Each ReactorStats is written by its own
// reactor thread only and read by any thread (metrics scrapes, GetStats), so
// updates are plain relaxed load+store: no lock, no locked instruction, and one
// cache-line-aligned block per reactor so reactors never share a line.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

#include "gateway/types.h"
#include "gateway/upstream_types.h"

namespace gateway {

// Single-writer counter. Add() must only be called from the owning thread.
class RelaxedCounter {
 public:
  void Add(uint64_t n = 1) { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// Single-writer gauge.
class RelaxedGauge {
 public:
  void Add(int64_t delta) { value_.store(value_.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed); }
  int64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

// Single-writer histogram with fixed upper bounds (non-cumulative buckets;
// the last bucket is +Inf).
template <size_t N>
class RelaxedHistogram {
 public:
  explicit RelaxedHistogram(const std::array<double, N>& bounds) : bounds_(bounds) {}

  void Observe(double value, uint64_t count = 1) {
    const size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    buckets_[i].Add(count);
    sum_.store(sum_.load(std::memory_order_relaxed) + value * static_cast<double>(count), std::memory_order_relaxed);
  }

  const std::array<double, N>& bounds() const { return bounds_; }
  uint64_t bucket(size_t i) const { return buckets_[i].Get(); }  // i in [0, N]
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t count() const {
    uint64_t total = 0;
    for (const auto& b : buckets_) total += b.Get();
    return total;
  }

 private:
  std::array<double, N> bounds_;
  std::array<RelaxedCounter, N + 1> buckets_;
  std::atomic<double> sum_{0};
};

// Seconds from a frame's last byte read to its response's last byte written.
inline constexpr std::array<double, 19> kRequestDurationBounds = {
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// Events returned by one epoll_wait.
inline constexpr std::array<double, 11> kEpollEventsBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

struct alignas(64) ReactorStats {
  RelaxedGauge active;  // open connections on this reactor
  std::array<RelaxedGauge, kNumConnectionStates> by_state;
  // Every connection accept() returned, rejected ones included, so that
  // accepted - sum(closed) = active.
  RelaxedCounter accepted;
  // Accepted and closed at once: over --max_connections, during shutdown, or
  // shed while the process was out of fds (closed as max_connections,
  // shutdown and error respectively).
  RelaxedCounter rejected;
  std::array<RelaxedCounter, kNumCloseReasons> closed;
  RelaxedCounter frames_in;
  RelaxedCounter frames_out;
  RelaxedCounter bytes_in;
  RelaxedCounter bytes_out;
  RelaxedCounter protocol_errors;
  RelaxedCounter accept_errors;    // EMFILE, ENFILE, ENOBUFS, ... on accept
  RelaxedCounter accept_backoffs;  // accepting paused briefly: out of fds, no spare to shed with
  RelaxedGauge queued_bytes;       // bytes of buffer blocks held by connections (and the scratch block)
  RelaxedCounter wakeups;          // epoll_wait returns
  RelaxedHistogram<kRequestDurationBounds.size()> request_duration{kRequestDurationBounds};
  RelaxedHistogram<kEpollEventsBounds.size()> epoll_events{kEpollEventsBounds};
  // Upstream mode. Errors no backend can be blamed for (kNoBackend,
  // kOverload; per-backend ones are in BackendInfo), and the frames each
  // write to an upstream connection carried.
  std::array<RelaxedCounter, kNumUpstreamErrors> upstream_errors;
  RelaxedHistogram<kUpstreamBatchBounds.size()> upstream_write_frames{kUpstreamBatchBounds};
};

}  // namespace gateway
