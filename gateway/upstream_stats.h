// Counters of one backend: one cache-line-aligned shard per reactor, each
// written by its reactor only (relaxed single-writer atomics, as
// ReactorStats), summed by readers on any thread.
#pragma once

#include <vector>

#include "gateway/reactor_stats.h"
#include "gateway/upstream_types.h"

namespace gateway {

struct alignas(64) BackendShard {
  RelaxedGauge connections;  // upstream connections open (connected)
  RelaxedGauge inflight;     // written, unanswered (timed-out ones excluded)
  RelaxedGauge pending;      // waiting to be written
  RelaxedCounter requests;   // written
  RelaxedCounter responses;  // answered and forwarded
  RelaxedCounter redispatched;
  std::array<RelaxedCounter, kNumUpstreamErrors> errors;
  RelaxedHistogram<kUpstreamDurationBounds.size()> duration{kUpstreamDurationBounds};
};

// Shared (std::shared_ptr) by the registry and every reactor's pool, so a
// scrape racing a RemoveBackend reads memory that is still there.
struct BackendStats {
  explicit BackendStats(int reactors) : shards(static_cast<size_t>(reactors)) {}
  std::vector<BackendShard> shards;
  // Adds the shards' counters into `info`.
  void SumInto(BackendInfo* info) const;
};

}  // namespace gateway
