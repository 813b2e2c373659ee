// Conversions from upstream mode's types (gateway/upstream_types.h) to the
// control-plane API's backend messages (gateway/v1/backend.proto), and the
// latency quantiles estimated from a backend's duration buckets.
#pragma once

#include <array>
#include <cstdint>

#include "gateway/upstream_types.h"
#include "gateway/v1/backend.pb.h"

namespace gateway::control {

v1::BackendState ToProto(BackendState state);
void ToProto(const BackendInfo& info, v1::Backend* out);
void ToProto(const BackendEvent& event, v1::BackendEvent* out);

using DurationBuckets = std::array<uint64_t, kUpstreamDurationBounds.size() + 1>;
// The `q` quantile (0..1) in seconds, interpolated linearly within its
// bucket (as Prometheus' histogram_quantile): 0 with no samples; the largest
// finite bound if it falls in the +Inf bucket.
double EstimateQuantile(const DurationBuckets& buckets, double q);

}  // namespace gateway::control
