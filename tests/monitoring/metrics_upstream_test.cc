// The gateway_upstream_* families from known backend pictures and reactor
// counters, serialized as a scrape would be: exact series and values, and a
// backend missing from the picture leaves no series behind.
#include "metrics/metrics_upstream.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"
#include "tests/support/http_client.h"

namespace gateway::testing {
namespace {

constexpr char kA[] = "10.0.0.1:6789";
constexpr char kB[] = "backend2:7000";

BackendInfo Backend(const std::string& address, BackendState state) {
  BackendInfo b;
  b.address = address;
  b.state = state;
  return b;
}

// A picture with every field distinct, so a mix-up shows.
std::vector<BackendInfo> TwoBackends() {
  BackendInfo a = Backend(kA, BackendState::kHealthy);
  a.weight = 3;
  a.connections = 4;
  a.inflight = 5;
  a.pending = 6;
  a.requests = 100;
  a.responses = 90;
  a.errors[static_cast<int>(UpstreamError::kTimeout)] = 7;
  a.errors[static_cast<int>(UpstreamError::kReset)] = 2;
  a.errors[static_cast<int>(UpstreamError::kConnect)] = 1;
  a.errors[static_cast<int>(UpstreamError::kProtocol)] = 8;
  a.redispatched = 11;
  a.ejections = 12;
  a.probes_ok = 13;
  a.probes_failed = 14;
  a.duration_buckets[0] = 10;   // <= 10 us
  a.duration_buckets[6] = 70;   // <= 1 ms
  a.duration_buckets[19] = 10;  // > 10 s
  a.duration_sum_seconds = 0.5;
  BackendInfo b = Backend(kB, BackendState::kEjected);
  b.requests = 1;
  return {a, b};
}

class UpstreamFamiliesTest : public ::testing::Test {
 protected:
  Exposition Render(const std::vector<BackendInfo>& backends) {
    std::vector<const ReactorStats*> reactors = {&reactors_[0], &reactors_[1]};
    std::vector<prometheus::MetricFamily> families;
    AppendUpstreamFamilies(backends, reactors, &families);
    const std::string text = prometheus::TextSerializer().Serialize(families);
    absl::StatusOr<Exposition> parsed = ParseExposition(text);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
    return parsed.ok() ? *std::move(parsed) : Exposition{};
  }

  ReactorStats reactors_[2];
};

TEST_F(UpstreamFamiliesTest, ExposesEveryFamilyWithTypeAndHelp) {
  const Exposition e = Render(TwoBackends());
  const std::vector<std::pair<std::string, std::string>> families = {
      {"gateway_upstream_requests_total", "counter"},
      {"gateway_upstream_responses_total", "counter"},
      {"gateway_upstream_errors_total", "counter"},
      {"gateway_upstream_redispatched_total", "counter"},
      {"gateway_upstream_ejections_total", "counter"},
      {"gateway_upstream_probes_total", "counter"},
      {"gateway_upstream_inflight", "gauge"},
      {"gateway_upstream_pending", "gauge"},
      {"gateway_upstream_connections", "gauge"},
      {"gateway_upstream_weight", "gauge"},
      {"gateway_upstream_healthy", "gauge"},
      {"gateway_upstream_backend_state", "gauge"},
      {"gateway_upstream_request_duration_seconds", "histogram"},
      {"gateway_upstream_unrouted_total", "counter"},
      {"gateway_upstream_write_frames", "histogram"},
  };
  EXPECT_EQ(e.types.size(), families.size());
  for (const auto& [name, type] : families) {
    ASSERT_EQ(e.types.count(name), 1u) << name;
    EXPECT_EQ(e.types.at(name), type) << name;
    EXPECT_FALSE(e.help.at(name).empty()) << name;
  }
}

TEST_F(UpstreamFamiliesTest, ReportsEachBackendExactly) {
  const Exposition e = Render(TwoBackends());
  const std::string a = R"({backend="10.0.0.1:6789")";
  EXPECT_EQ(e.Value("gateway_upstream_requests_total" + a + "}"), 100);
  EXPECT_EQ(e.Value("gateway_upstream_responses_total" + a + "}"), 90);
  EXPECT_EQ(e.Value("gateway_upstream_errors_total" + a + R"(,reason="timeout"})"), 7);
  EXPECT_EQ(e.Value("gateway_upstream_errors_total" + a + R"(,reason="reset"})"), 2);
  EXPECT_EQ(e.Value("gateway_upstream_errors_total" + a + R"(,reason="connect"})"), 1);
  EXPECT_EQ(e.Value("gateway_upstream_errors_total" + a + R"(,reason="protocol"})"), 8);
  EXPECT_EQ(e.Value("gateway_upstream_redispatched_total" + a + "}"), 11);
  EXPECT_EQ(e.Value("gateway_upstream_ejections_total" + a + "}"), 12);
  EXPECT_EQ(e.Value("gateway_upstream_probes_total" + a + R"(,result="ok"})"), 13);
  EXPECT_EQ(e.Value("gateway_upstream_probes_total" + a + R"(,result="failed"})"), 14);
  EXPECT_EQ(e.Value("gateway_upstream_inflight" + a + "}"), 5);
  EXPECT_EQ(e.Value("gateway_upstream_pending" + a + "}"), 6);
  EXPECT_EQ(e.Value("gateway_upstream_connections" + a + "}"), 4);
  EXPECT_EQ(e.Value("gateway_upstream_weight" + a + "}"), 3);
  EXPECT_EQ(e.Value("gateway_upstream_healthy" + a + "}"), 1);
  // Cumulative buckets; the count is the +Inf bucket.
  const std::string d = "gateway_upstream_request_duration_seconds";
  EXPECT_EQ(e.Value(d + "_bucket" + a + R"(,le="1e-05"})"), 10);
  EXPECT_EQ(e.Value(d + "_bucket" + a + R"(,le="0.0005"})"), 10);
  EXPECT_EQ(e.Value(d + "_bucket" + a + R"(,le="0.001"})"), 80);
  EXPECT_EQ(e.Value(d + "_bucket" + a + R"(,le="10"})"), 80);
  EXPECT_EQ(e.Value(d + "_bucket" + a + R"(,le="+Inf"})"), 90);
  EXPECT_EQ(e.Value(d + "_count" + a + "}"), 90);
  EXPECT_EQ(e.Value(d + "_sum" + a + "}"), 0.5);
  // Per backend: 4 blamed error reasons, 2 probe results, 4 states, 19 + 1
  // buckets; the unrouted reasons are never a backend's.
  EXPECT_EQ(e.Count("gateway_upstream_errors_total"), 2 * 4);
  EXPECT_EQ(e.Sum("gateway_upstream_errors_total", {R"(reason="no_backend")"}), -1);
  EXPECT_EQ(e.Sum("gateway_upstream_errors_total", {R"(reason="overload")"}), -1);
  EXPECT_EQ(e.Count("gateway_upstream_probes_total"), 2 * 2);
  EXPECT_EQ(e.Count("gateway_upstream_backend_state"), 2 * kNumBackendStates);
  EXPECT_EQ(e.Count(d + "_bucket"), 2 * 20);
  EXPECT_EQ(e.Count("gateway_upstream_requests_total"), 2);
  EXPECT_EQ(e.Value(R"(gateway_upstream_requests_total{backend="backend2:7000"})"), 1);
  EXPECT_EQ(e.Value(d + R"(_count{backend="backend2:7000"})"), 0);
}

TEST_F(UpstreamFamiliesTest, StateIsOneHotAndHealthyOnlyWhenHealthy) {
  for (int s = 0; s < kNumBackendStates; ++s) {
    const auto state = static_cast<BackendState>(s);
    const Exposition e = Render({Backend(kA, state)});
    SCOPED_TRACE(BackendStateName(state));
    for (const char* name : {"healthy", "unhealthy", "draining", "ejected"}) {
      EXPECT_EQ(
          e.Value(std::string(R"(gateway_upstream_backend_state{backend="10.0.0.1:6789",state=")") + name + "\"}"),
          name == BackendStateName(state) ? 1 : 0)
          << name;
    }
    EXPECT_EQ(e.Value(R"(gateway_upstream_healthy{backend="10.0.0.1:6789"})"), state == BackendState::kHealthy ? 1 : 0);
  }
}

TEST_F(UpstreamFamiliesTest, SumsUnroutedErrorsAndWriteBatchesOverReactors) {
  reactors_[0].upstream_errors[static_cast<int>(UpstreamError::kNoBackend)].Add(3);
  reactors_[1].upstream_errors[static_cast<int>(UpstreamError::kNoBackend)].Add(4);
  reactors_[1].upstream_errors[static_cast<int>(UpstreamError::kOverload)].Add(5);
  reactors_[0].upstream_write_frames.Observe(1);
  reactors_[0].upstream_write_frames.Observe(3);
  reactors_[1].upstream_write_frames.Observe(3);
  reactors_[1].upstream_write_frames.Observe(2000);
  const Exposition e = Render({});
  EXPECT_EQ(e.Count("gateway_upstream_unrouted_total"), 2);
  EXPECT_EQ(e.Value(R"(gateway_upstream_unrouted_total{reason="no_backend"})"), 7);
  EXPECT_EQ(e.Value(R"(gateway_upstream_unrouted_total{reason="overload"})"), 5);
  const std::string w = "gateway_upstream_write_frames";
  EXPECT_EQ(e.Count(w + "_bucket"), 12);
  EXPECT_EQ(e.Value(w + R"(_bucket{le="1"})"), 1);
  EXPECT_EQ(e.Value(w + R"(_bucket{le="2"})"), 1);
  EXPECT_EQ(e.Value(w + R"(_bucket{le="4"})"), 3);
  EXPECT_EQ(e.Value(w + R"(_bucket{le="1024"})"), 3);
  EXPECT_EQ(e.Value(w + R"(_bucket{le="+Inf"})"), 4);
  EXPECT_EQ(e.Value(w + "_count"), 4);
  EXPECT_EQ(e.Value(w + "_sum"), 2007);
}

// Series are built from the picture alone: a removed backend's vanish at the
// next scrape, and no backend at all leaves only the reactor totals.
TEST_F(UpstreamFamiliesTest, ARemovedBackendLeavesNoSeries) {
  std::vector<BackendInfo> backends = TwoBackends();
  Exposition e = Render(backends);
  EXPECT_EQ(e.Sum("gateway_upstream_requests_total"), 101);
  backends.erase(backends.begin());
  e = Render(backends);
  for (const auto& [series, value] : e.samples) {
    EXPECT_FALSE(absl::StrContains(series, kA)) << series;
  }
  EXPECT_EQ(e.Count("gateway_upstream_backend_state"), kNumBackendStates);
  EXPECT_EQ(e.Sum("gateway_upstream_requests_total"), 1);
  e = Render({});
  for (const auto& [series, value] : e.samples) {
    EXPECT_FALSE(absl::StrContains(series, "backend=")) << series;
  }
  EXPECT_EQ(e.Count("gateway_upstream_unrouted_total"), 2);
  EXPECT_EQ(e.Count("gateway_upstream_write_frames_bucket"), 12);
}

}  // namespace
}  // namespace gateway::testing
