#include "gateway/upstream_stats.h"

namespace gateway {

void BackendStats::SumInto(BackendInfo* info) const {
  for (const BackendShard& shard : shards) {
    info->connections += static_cast<uint64_t>(std::max<int64_t>(shard.connections.Get(), 0));
    info->inflight += static_cast<uint64_t>(std::max<int64_t>(shard.inflight.Get(), 0));
    info->pending += static_cast<uint64_t>(std::max<int64_t>(shard.pending.Get(), 0));
    info->requests += shard.requests.Get();
    info->responses += shard.responses.Get();
    info->redispatched += shard.redispatched.Get();
    for (int e = 0; e < kNumUpstreamErrors; ++e) info->errors[e] += shard.errors[e].Get();
    for (size_t b = 0; b < info->duration_buckets.size(); ++b) info->duration_buckets[b] += shard.duration.bucket(b);
    info->duration_sum_seconds += shard.duration.sum();
  }
}

}  // namespace gateway
