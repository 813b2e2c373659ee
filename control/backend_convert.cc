#include "control/backend_convert.h"

#include <limits>

#include "absl/time/time.h"
#include "control/proto_convert.h"

namespace gateway::control {
namespace {

void ToProto(const std::array<uint64_t, kNumUpstreamErrors>& errors, v1::BackendErrors* out) {
  auto count = [&errors](UpstreamError e) { return errors[static_cast<int>(e)]; };
  out->set_timeout(count(UpstreamError::kTimeout));
  out->set_reset(count(UpstreamError::kReset));
  out->set_connect(count(UpstreamError::kConnect));
  out->set_protocol(count(UpstreamError::kProtocol));
  out->set_no_backend(count(UpstreamError::kNoBackend));
  out->set_overload(count(UpstreamError::kOverload));
}

void LatencyToProto(const BackendInfo& info, v1::BackendLatency* out) {
  uint64_t count = 0;
  for (size_t i = 0; i < info.duration_buckets.size(); ++i) {
    count += info.duration_buckets[i];
    v1::BackendLatency::Bucket* bucket = out->add_buckets();
    bucket->set_upper_bound_seconds(i < kUpstreamDurationBounds.size() ? kUpstreamDurationBounds[i]
                                                                       : std::numeric_limits<double>::infinity());
    bucket->set_count(info.duration_buckets[i]);
  }
  out->set_count(count);
  if (count == 0) return;
  control::ToProto(absl::Seconds(info.duration_sum_seconds / static_cast<double>(count)), out->mutable_mean());
  control::ToProto(absl::Seconds(EstimateQuantile(info.duration_buckets, 0.5)), out->mutable_p50());
  control::ToProto(absl::Seconds(EstimateQuantile(info.duration_buckets, 0.99)), out->mutable_p99());
}

}  // namespace

v1::BackendState ToProto(BackendState state) {
  switch (state) {
    case BackendState::kHealthy: return v1::BACKEND_STATE_HEALTHY;
    case BackendState::kUnhealthy: return v1::BACKEND_STATE_UNHEALTHY;
    case BackendState::kDraining: return v1::BACKEND_STATE_DRAINING;
    case BackendState::kEjected: return v1::BACKEND_STATE_EJECTED;
  }
  return v1::BACKEND_STATE_UNSPECIFIED;
}

double EstimateQuantile(const DurationBuckets& buckets, double q) {
  uint64_t total = 0;
  for (uint64_t n : buckets) total += n;
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  uint64_t below = 0;  // samples in the buckets before i
  for (size_t i = 0; i < kUpstreamDurationBounds.size(); ++i) {
    if (buckets[i] > 0 && static_cast<double>(below + buckets[i]) >= rank) {
      const double lower = i == 0 ? 0 : kUpstreamDurationBounds[i - 1];
      const double fraction = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
      return lower + (kUpstreamDurationBounds[i] - lower) * fraction;
    }
    below += buckets[i];
  }
  return kUpstreamDurationBounds.back();  // in the +Inf bucket: all we know is "above the last bound"
}

void ToProto(const BackendInfo& info, v1::Backend* out) {
  out->set_address(info.address);
  out->set_state(ToProto(info.state));
  out->set_weight(info.weight);
  out->set_connections(info.connections);
  out->set_inflight(info.inflight);
  out->set_pending(info.pending);
  out->set_requests(info.requests);
  out->set_responses(info.responses);
  ToProto(info.errors, out->mutable_errors());
  out->set_redispatched(info.redispatched);
  out->set_ejections(info.ejections);
  out->set_probes_ok(info.probes_ok);
  out->set_probes_failed(info.probes_failed);
  out->set_last_error(info.last_error);
  LatencyToProto(info, out->mutable_latency());
  control::ToProto(info.added_at, out->mutable_added_at());
}

void ToProto(const BackendEvent& event, v1::BackendEvent* out) {
  switch (event.type) {
    case BackendEvent::Type::kAdded: out->set_type(v1::BackendEvent::TYPE_ADDED); break;
    case BackendEvent::Type::kRemoved: out->set_type(v1::BackendEvent::TYPE_REMOVED); break;
    case BackendEvent::Type::kStateChanged:
      out->set_type(v1::BackendEvent::TYPE_STATE_CHANGED);
      out->set_old_state(ToProto(event.old_state));
      break;
    case BackendEvent::Type::kWeightChanged: out->set_type(v1::BackendEvent::TYPE_WEIGHT_CHANGED); break;
  }
  ToProto(event.backend, out->mutable_backend());
  out->set_reason(event.reason);
  control::ToProto(event.time, out->mutable_time());
}

}  // namespace gateway::control
