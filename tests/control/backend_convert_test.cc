// Upstream mode's conversions to the API's messages: every field of a
// backend's picture, the events, and the latency quantiles estimated from
// the duration buckets (exact values).
#include "control/backend_convert.h"

#include <limits>

#include "gtest/gtest.h"

namespace gateway::control {
namespace {

double Seconds(const google::protobuf::Duration& d) { return static_cast<double>(d.seconds()) + d.nanos() * 1e-9; }

TEST(EstimateQuantileTest, NoSamplesIsZero) {
  EXPECT_EQ(EstimateQuantile(DurationBuckets{}, 0.5), 0);
  EXPECT_EQ(EstimateQuantile(DurationBuckets{}, 0.99), 0);
}

TEST(EstimateQuantileTest, InterpolatesWithinTheBucket) {
  DurationBuckets buckets{};
  buckets[2] = 10;  // (2.5e-5, 5e-5]
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 0.5), 2.5e-5 + 2.5e-5 * 0.5);
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 1.0), 5e-5);
  buckets[0] = 10;  // (0, 1e-5]: the median is now the first bucket's top
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 0.5), 1e-5);
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 0.25), 0.5e-5);
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 0.75), 2.5e-5 + 2.5e-5 * 0.5);
}

TEST(EstimateQuantileTest, TheInfBucketReportsTheLargestBound) {
  DurationBuckets buckets{};
  buckets.back() = 3;
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 0.5), kUpstreamDurationBounds.back());
  buckets[0] = 97;
  EXPECT_DOUBLE_EQ(EstimateQuantile(buckets, 0.99), kUpstreamDurationBounds.back());
  EXPECT_LE(EstimateQuantile(buckets, 0.5), 1e-5);
}

TEST(BackendToProtoTest, EveryField) {
  BackendInfo info;
  info.address = "10.0.0.1:7000";
  info.weight = 3;
  info.state = BackendState::kEjected;
  info.connections = 4;
  info.inflight = 5;
  info.pending = 6;
  info.requests = 100;
  info.responses = 90;
  for (int i = 0; i < kNumUpstreamErrors; ++i) info.errors[i] = 10 + i;
  info.redispatched = 7;
  info.ejections = 2;
  info.probes_ok = 11;
  info.probes_failed = 12;
  info.last_error = "connection refused";
  info.duration_buckets[6] = 4;  // (5e-4, 1e-3]
  info.duration_sum_seconds = 0.004;
  info.added_at = absl::FromUnixSeconds(1700000000) + absl::Milliseconds(250);
  v1::Backend out;
  ToProto(info, &out);
  EXPECT_EQ(out.address(), "10.0.0.1:7000");
  EXPECT_EQ(out.weight(), 3u);
  EXPECT_EQ(out.state(), v1::BACKEND_STATE_EJECTED);
  EXPECT_EQ(out.connections(), 4u);
  EXPECT_EQ(out.inflight(), 5u);
  EXPECT_EQ(out.pending(), 6u);
  EXPECT_EQ(out.requests(), 100u);
  EXPECT_EQ(out.responses(), 90u);
  EXPECT_EQ(out.errors().timeout(), 10u);
  EXPECT_EQ(out.errors().reset(), 11u);
  EXPECT_EQ(out.errors().connect(), 12u);
  EXPECT_EQ(out.errors().protocol(), 13u);
  EXPECT_EQ(out.errors().no_backend(), 14u);
  EXPECT_EQ(out.errors().overload(), 15u);
  EXPECT_EQ(out.redispatched(), 7u);
  EXPECT_EQ(out.ejections(), 2u);
  EXPECT_EQ(out.probes_ok(), 11u);
  EXPECT_EQ(out.probes_failed(), 12u);
  EXPECT_EQ(out.last_error(), "connection refused");
  EXPECT_EQ(out.added_at().seconds(), 1700000000);
  EXPECT_EQ(out.added_at().nanos(), 250000000);
  const v1::BackendLatency& latency = out.latency();
  EXPECT_EQ(latency.count(), 4u);
  EXPECT_NEAR(Seconds(latency.mean()), 0.001, 1e-9);
  EXPECT_NEAR(Seconds(latency.p50()), 5e-4 + 5e-4 * 0.5, 1e-9);
  EXPECT_NEAR(Seconds(latency.p99()), 5e-4 + 5e-4 * 0.99, 1e-9);
  ASSERT_EQ(latency.buckets_size(), static_cast<int>(kUpstreamDurationBounds.size() + 1));
  EXPECT_EQ(latency.buckets(6).upper_bound_seconds(), 1e-3);
  EXPECT_EQ(latency.buckets(6).count(), 4u);
  EXPECT_EQ(latency.buckets(0).count(), 0u);
  EXPECT_EQ(latency.buckets(latency.buckets_size() - 1).upper_bound_seconds(), std::numeric_limits<double>::infinity());
}

TEST(BackendToProtoTest, StatesAndEvents) {
  EXPECT_EQ(ToProto(BackendState::kHealthy), v1::BACKEND_STATE_HEALTHY);
  EXPECT_EQ(ToProto(BackendState::kUnhealthy), v1::BACKEND_STATE_UNHEALTHY);
  EXPECT_EQ(ToProto(BackendState::kDraining), v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(ToProto(BackendState::kEjected), v1::BACKEND_STATE_EJECTED);

  BackendEvent event;
  event.type = BackendEvent::Type::kStateChanged;
  event.time = absl::FromUnixSeconds(1700000001);
  event.backend.address = "b:1";
  event.backend.state = BackendState::kUnhealthy;
  event.old_state = BackendState::kHealthy;
  event.reason = "3 probes failed: connection refused";
  v1::BackendEvent out;
  ToProto(event, &out);
  EXPECT_EQ(out.type(), v1::BackendEvent::TYPE_STATE_CHANGED);
  EXPECT_EQ(out.old_state(), v1::BACKEND_STATE_HEALTHY);
  EXPECT_EQ(out.backend().state(), v1::BACKEND_STATE_UNHEALTHY);
  EXPECT_EQ(out.backend().address(), "b:1");
  EXPECT_EQ(out.reason(), "3 probes failed: connection refused");
  EXPECT_EQ(out.time().seconds(), 1700000001);
  EXPECT_FALSE(out.backend().latency().has_mean());  // no samples, no made-up figures

  for (auto [type, want] : {std::pair{BackendEvent::Type::kAdded, v1::BackendEvent::TYPE_ADDED},
                            std::pair{BackendEvent::Type::kRemoved, v1::BackendEvent::TYPE_REMOVED},
                            std::pair{BackendEvent::Type::kWeightChanged, v1::BackendEvent::TYPE_WEIGHT_CHANGED}}) {
    event.type = type;
    out.Clear();
    ToProto(event, &out);
    EXPECT_EQ(out.type(), want);
    EXPECT_EQ(out.old_state(), v1::BACKEND_STATE_UNSPECIFIED);  // only for state changes
  }
}

}  // namespace
}  // namespace gateway::control
