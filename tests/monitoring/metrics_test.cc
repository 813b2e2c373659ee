// The metrics endpoint end to end, in process: a real gateway on 127.0.0.1:0
// and a MetricsServer on another ephemeral port, known traffic from real
// sockets, and /metrics scraped over HTTP with exact counter values asserted.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "metrics/metrics.h"
#include "tests/support/http_client.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

constexpr int kReactors = 2;

class MetricsTest : public ::testing::Test {
 protected:
  void StartGateway(GatewayOptions options = {}) {
    options.reactors = kReactors;
    absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(std::move(options));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics = MetricsServer::Start("127.0.0.1:0", gw_.get());
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    ASSERT_GT(metrics_->port(), 0);
  }

  void TearDown() override {
    if (gw_) gw_->Shutdown(absl::Seconds(5));
    metrics_.reset();
    gw_.reset();
  }

  Exposition Scrape() {
    absl::StatusOr<testing::HttpResponse> response =
        testing::HttpGet("127.0.0.1", metrics_->port(), "/metrics", Deadline());
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return {};
    EXPECT_EQ(response->status, 200);
    absl::StatusOr<Exposition> parsed = testing::ParseExposition(response->body);
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? *std::move(parsed) : Exposition{};
  }

  // Scrapes until `condition` holds for a scrape (bounded); returns that one.
  Exposition ScrapeUntil(const std::function<bool(const Exposition&)>& condition) {
    Exposition last;
    const bool held = WaitUntil([&] {
      last = Scrape();
      return condition(last);
    });
    EXPECT_TRUE(held) << "condition never held; last scrape had " << last.samples.size() << " samples";
    return last;
  }

  std::unique_ptr<Gateway> gw_;
  std::unique_ptr<MetricsServer> metrics_;
};

// Buckets are cumulative, end with +Inf, and +Inf equals _count.
void ExpectWellFormedHistogram(const Exposition& e, const std::string& name, const std::string& reactor,
                               int finite_buckets) {
  double previous = 0;
  int seen = 0;
  for (const auto& [series, value] : e.samples) {
    if (series.rfind(name + "_bucket{reactor=\"" + reactor + "\"", 0) != 0) continue;
    ++seen;
    if (series.find("le=\"+Inf\"") != std::string::npos) {
      EXPECT_EQ(value, e.Value(absl::StrCat(name, "_count{reactor=\"", reactor, "\"}"))) << series;
    }
  }
  EXPECT_EQ(seen, finite_buckets + 1) << name;
  // The map is ordered by le as text, not number: check monotonicity by
  // walking the exposed bounds in numeric order.
  std::vector<std::pair<double, double>> buckets;
  for (const auto& [series, value] : e.samples) {
    if (series.rfind(name + "_bucket{reactor=\"" + reactor + "\"", 0) != 0) continue;
    const size_t le = series.find("le=\"") + 4;
    const std::string bound = series.substr(le, series.find('"', le) - le);
    buckets.emplace_back(bound == "+Inf" ? INFINITY : std::stod(bound), value);
  }
  std::sort(buckets.begin(), buckets.end());
  for (const auto& [bound, count] : buckets) {
    EXPECT_GE(count, previous) << name << " le=" << bound;
    previous = count;
  }
}

TEST_F(MetricsTest, ExposesEveryFamilyWithTypeAndHelp) {
  StartGateway();
  const Exposition e = Scrape();
  const std::vector<std::pair<std::string, std::string>> families = {
      {"gateway_build_info", "gauge"},
      {"gateway_connections_active", "gauge"},
      {"gateway_draining", "gauge"},
      {"gateway_connections", "gauge"},
      {"gateway_connections_accepted_total", "counter"},
      {"gateway_connections_rejected_total", "counter"},
      {"gateway_connections_closed_total", "counter"},
      {"gateway_frames_received_total", "counter"},
      {"gateway_frames_sent_total", "counter"},
      {"gateway_bytes_received_total", "counter"},
      {"gateway_bytes_sent_total", "counter"},
      {"gateway_protocol_errors_total", "counter"},
      {"gateway_request_duration_seconds", "histogram"},
      {"gateway_accept_errors_total", "counter"},
      {"gateway_epoll_wakeups_total", "counter"},
      {"gateway_epoll_wait_events", "histogram"},
      {"gateway_trigger_mode", "gauge"},
      {"gateway_trigger_mode_switches_total", "counter"},
      {"gateway_io_model", "gauge"},
      {"gateway_io_model_switches_total", "counter"},
      {"gateway_io_model_switch_duration_seconds", "gauge"},
      {"process_cpu_seconds_total", "counter"},
      {"process_resident_memory_bytes", "gauge"},
      {"process_virtual_memory_bytes", "gauge"},
      {"process_open_fds", "gauge"},
      {"process_max_fds", "gauge"},
      {"process_start_time_seconds", "gauge"},
  };
  for (const auto& [name, type] : families) {
    ASSERT_EQ(e.types.count(name), 1u) << name;
    EXPECT_EQ(e.types.at(name), type) << name;
    EXPECT_FALSE(e.help.at(name).empty()) << name;
  }
  // Every close reason and every state is there per reactor, even at zero.
  EXPECT_EQ(e.Count("gateway_connections_closed_total"), kReactors * kNumCloseReasons);
  for (int c = 0; c < kNumCloseReasons; ++c) {
    const std::string reason(CloseReasonName(static_cast<CloseReason>(c)));
    for (int r = 0; r < kReactors; ++r) {
      EXPECT_EQ(e.Value(absl::StrCat("gateway_connections_closed_total{reactor=\"", r, "\",reason=\"", reason, "\"}")),
                0)
          << reason;
    }
  }
  EXPECT_EQ(e.Count("gateway_connections"), kReactors * kNumConnectionStates);
  EXPECT_EQ(e.Count("gateway_frames_received_total"), kReactors);
  EXPECT_EQ(e.Value("gateway_connections_active"), 0);
  EXPECT_EQ(e.Value("gateway_draining"), 0);
  EXPECT_EQ(e.Value("gateway_trigger_mode{mode=\"edge\"}"), 1);
  EXPECT_EQ(e.Value("gateway_trigger_mode{mode=\"level\"}"), 0);
  EXPECT_EQ(e.Value("gateway_trigger_mode_switches_total"), 0);
  // Every IO model's series is there, 1 only for the one in use.
  EXPECT_EQ(e.Count("gateway_io_model"), kNumIoModels);
  for (const char* model : {"select", "poll", "io_uring", "blocking", "signal"}) {
    EXPECT_EQ(e.Value(absl::StrCat("gateway_io_model{model=\"", model, "\"}")), 0) << model;
  }
  EXPECT_EQ(e.Value("gateway_io_model{model=\"epoll\"}"), 1);
  EXPECT_EQ(e.Value("gateway_io_model_switches_total"), 0);
  EXPECT_EQ(e.Value("gateway_io_model_switch_duration_seconds"), 0);
  EXPECT_EQ(e.Value("gateway_connections_closed_total{reactor=\"0\",reason=\"select_fd_limit\"}"), 0);
  EXPECT_EQ(e.Sum("gateway_build_info"), 1);
  // Not in upstream mode: no upstream family at all.
  for (const auto& [name, type] : e.types) EXPECT_NE(name.rfind("gateway_upstream_", 0), 0u) << name;
  EXPECT_GT(e.Value("process_open_fds"), 0);
  EXPECT_GT(e.Value("process_start_time_seconds"), 1.6e9);
  for (int r = 0; r < kReactors; ++r) {
    ExpectWellFormedHistogram(e, "gateway_request_duration_seconds", absl::StrCat(r), 19);
    ExpectWellFormedHistogram(e, "gateway_epoll_wait_events", absl::StrCat(r), 11);
  }
}

TEST_F(MetricsTest, CountsKnownTrafficExactly) {
  StartGateway();
  // One client pipelines three frames, reads the three responses, then
  // half-closes: a peer_closed close.
  ASSERT_OK_AND_ASSIGN(TestClient good, TestClient::Connect(gw_->port()));
  const std::string request = Frame("abc") + Frame("hello") + Frame("x");  // 8 + 10 + 6 bytes
  const std::string expected = ReversedFrame("abc") + ReversedFrame("hello") + ReversedFrame("x");
  ASSERT_OK(good.WriteAll(request));
  ASSERT_OK_AND_ASSIGN(const std::string got, good.ReadExactly(expected.size()));
  EXPECT_EQ(got, expected);
  ASSERT_OK(good.ShutdownWrite());
  ASSERT_OK(good.ExpectEof());
  // Another sends one byte that cannot start a header: a protocol error.
  ASSERT_OK_AND_ASSIGN(TestClient bad, TestClient::Connect(gw_->port()));
  ASSERT_OK(bad.WriteAll("x"));
  ASSERT_OK(bad.ExpectEof());
  bad.Close();  // the gateway lingers for our FIN before counting the close

  const Exposition e = ScrapeUntil([](const Exposition& s) {
    return s.Value("gateway_connections_active") == 0 &&
           s.Sum("gateway_connections_closed_total", {"reason=\"peer_closed\""}) == 1 &&
           s.Sum("gateway_connections_closed_total", {"reason=\"protocol_error\""}) == 1;
  });
  EXPECT_EQ(e.Sum("gateway_connections_accepted_total"), 2);
  EXPECT_EQ(e.Sum("gateway_connections_rejected_total"), 0);
  EXPECT_EQ(e.Sum("gateway_connections_closed_total"), 2);
  EXPECT_EQ(e.Sum("gateway_frames_received_total"), 3);
  EXPECT_EQ(e.Sum("gateway_frames_sent_total"), 3);
  EXPECT_EQ(e.Sum("gateway_bytes_received_total"), static_cast<double>(request.size() + 1));
  EXPECT_EQ(e.Sum("gateway_bytes_sent_total"), static_cast<double>(expected.size()));
  EXPECT_EQ(e.Sum("gateway_protocol_errors_total"), 1);
  EXPECT_EQ(e.Sum("gateway_accept_errors_total"), 0);
  EXPECT_EQ(e.Sum("gateway_connections"), 0);
  EXPECT_EQ(e.Sum("gateway_request_duration_seconds_count"), 3);
  EXPECT_GT(e.Sum("gateway_request_duration_seconds_sum"), 0);
  const double wakeups = e.Sum("gateway_epoll_wakeups_total");
  const double event_wakeups = e.Sum("gateway_epoll_wait_events_count");
  EXPECT_GT(event_wakeups, 0);
  EXPECT_LE(event_wakeups, wakeups);
  EXPECT_GE(e.Sum("gateway_epoll_wait_events_sum"), event_wakeups);  // >= 1 event each
  for (int r = 0; r < kReactors; ++r) {
    ExpectWellFormedHistogram(e, "gateway_request_duration_seconds", absl::StrCat(r), 19);
    ExpectWellFormedHistogram(e, "gateway_epoll_wait_events", absl::StrCat(r), 11);
  }
  // The per-reactor series add up to what the data plane counts.
  EXPECT_EQ(e.Sum("gateway_frames_received_total"), static_cast<double>(SumStat(*gw_, &ReactorStats::frames_in)));
}

TEST_F(MetricsTest, ReportsOpenConnectionsByState) {
  StartGateway();
  ASSERT_OK_AND_ASSIGN(TestClient idle, TestClient::Connect(gw_->port()));
  // A round trip makes sure the connection is past accept.
  ASSERT_OK_AND_ASSIGN(const std::string reply, idle.RoundTrip("ping"));
  const Exposition open = ScrapeUntil([](const Exposition& s) {
    return s.Value("gateway_connections_active") == 1 && s.Sum("gateway_connections", {"state=\"read\""}) == 1;
  });
  EXPECT_EQ(open.Sum("gateway_connections"), 1);
  EXPECT_EQ(open.Sum("gateway_connections_accepted_total"), 1);
  idle.Close();
  const Exposition closed = ScrapeUntil([](const Exposition& s) { return s.Value("gateway_connections_active") == 0; });
  EXPECT_EQ(closed.Sum("gateway_connections"), 0);
  EXPECT_EQ(closed.Sum("gateway_connections_closed_total"), 1);
}

TEST_F(MetricsTest, FollowsTriggerModeSwitches) {
  StartGateway();
  ASSERT_OK(gw_->SetTriggerMode(TriggerMode::kLevel));
  Exposition e = Scrape();
  EXPECT_EQ(e.Value("gateway_trigger_mode{mode=\"level\"}"), 1);
  EXPECT_EQ(e.Value("gateway_trigger_mode{mode=\"edge\"}"), 0);
  EXPECT_EQ(e.Value("gateway_trigger_mode_switches_total"), 1);
  ASSERT_OK(gw_->SetTriggerMode(TriggerMode::kLevel));  // no change: not a switch
  EXPECT_EQ(Scrape().Value("gateway_trigger_mode_switches_total"), 1);
  ASSERT_OK(gw_->SetTriggerMode(TriggerMode::kEdge));
  e = Scrape();
  EXPECT_EQ(e.Value("gateway_trigger_mode{mode=\"edge\"}"), 1);
  EXPECT_EQ(e.Value("gateway_trigger_mode{mode=\"level\"}"), 0);
  EXPECT_EQ(e.Value("gateway_trigger_mode_switches_total"), 2);
}

TEST_F(MetricsTest, FollowsIoModelSwitches) {
  StartGateway();
  // Refused and no-op requests leave the series as they were.
  EXPECT_EQ(gw_->SetIoModel(IoModel::kBlocking).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_OK(gw_->SetIoModel(IoModel::kEpoll));
  Exposition e = Scrape();
  EXPECT_EQ(e.Value("gateway_io_model{model=\"epoll\"}"), 1);
  EXPECT_EQ(e.Sum("gateway_io_model"), 1);
  EXPECT_EQ(e.Value("gateway_io_model_switches_total"), 0);
  EXPECT_EQ(e.Value("gateway_io_model_switch_duration_seconds"), 0);

  const absl::Status to_poll = gw_->SetIoModel(IoModel::kPoll);
  if (absl::IsUnimplemented(to_poll)) GTEST_SKIP() << "no poll back-end in this build: " << to_poll;
  ASSERT_OK(to_poll);
  e = Scrape();
  EXPECT_EQ(e.Value("gateway_io_model{model=\"poll\"}"), 1);
  EXPECT_EQ(e.Value("gateway_io_model{model=\"epoll\"}"), 0);
  EXPECT_EQ(e.Sum("gateway_io_model"), 1);
  EXPECT_EQ(e.Value("gateway_io_model_switches_total"), 1);
  EXPECT_EQ(e.Value("gateway_io_model_switch_duration_seconds"),
            absl::ToDoubleSeconds(gw_->last_io_model_switch_duration()));
  EXPECT_GT(e.Value("gateway_io_model_switch_duration_seconds"), 0);
  ASSERT_OK(gw_->SetIoModel(IoModel::kEpoll));
  e = Scrape();
  EXPECT_EQ(e.Value("gateway_io_model{model=\"epoll\"}"), 1);
  EXPECT_EQ(e.Value("gateway_io_model{model=\"poll\"}"), 0);
  EXPECT_EQ(e.Value("gateway_io_model_switches_total"), 2);
}

TEST_F(MetricsTest, CountsConnectionsRejectedOverTheLimit) {
  GatewayOptions options;
  options.reactor.max_connections = 1;
  StartGateway(options);
  ASSERT_OK_AND_ASSIGN(TestClient first, TestClient::Connect(gw_->port()));
  ASSERT_OK(first.RoundTrip("a"));
  ASSERT_OK_AND_ASSIGN(TestClient second, TestClient::Connect(gw_->port()));
  ASSERT_OK(second.ExpectEof());
  const Exposition e =
      ScrapeUntil([](const Exposition& s) { return s.Sum("gateway_connections_rejected_total") == 1; });
  EXPECT_EQ(e.Sum("gateway_connections_closed_total", {"reason=\"max_connections\""}), 1);
  EXPECT_EQ(e.Sum("gateway_connections_closed_total"), 1);
  EXPECT_EQ(e.Value("gateway_connections_active"), 1);
  EXPECT_EQ(e.Sum("gateway_connections"), 1);
}

TEST_F(MetricsTest, LatencyOffLeavesTheHistogramOut) {
  GatewayOptions options;
  options.reactor.measure_latency = false;
  StartGateway(options);
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
  ASSERT_OK(client.RoundTrip("abc"));
  const Exposition e = ScrapeUntil([](const Exposition& s) { return s.Sum("gateway_frames_sent_total") == 1; });
  EXPECT_EQ(e.types.count("gateway_request_duration_seconds"), 0u);
  EXPECT_EQ(e.Count("gateway_request_duration_seconds_count"), 0);
  EXPECT_EQ(e.types.count("gateway_epoll_wait_events"), 1u);
}

TEST_F(MetricsTest, ScrapesStayConsistentUnderConcurrentTraffic) {
  StartGateway();
  constexpr int kClients = 4;
  constexpr int kFramesEach = 300;
  std::vector<std::thread> clients;
  std::atomic<int> failures{0};
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
      if (!client.ok()) {
        ++failures;
        return;
      }
      for (int i = 0; i < kFramesEach; ++i) {
        absl::StatusOr<std::string> reply = client->RoundTrip(absl::StrCat("client", c, "-", i));
        if (!reply.ok()) {
          ++failures;
          return;
        }
      }
    });
  }
  // Counters never go backwards across scrapes taken while traffic flows.
  double last_frames = 0;
  double last_bytes = 0;
  for (int i = 0; i < 20; ++i) {
    const Exposition e = Scrape();
    const double frames = e.Sum("gateway_frames_sent_total");
    const double bytes = e.Sum("gateway_bytes_sent_total");
    EXPECT_GE(frames, last_frames);
    EXPECT_GE(bytes, last_bytes);
    last_frames = frames;
    last_bytes = bytes;
  }
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(failures.load(), 0);
  const Exposition e =
      ScrapeUntil([](const Exposition& s) { return s.Sum("gateway_frames_sent_total") == kClients * kFramesEach; });
  EXPECT_EQ(e.Sum("gateway_frames_received_total"), kClients * kFramesEach);
  EXPECT_EQ(e.Sum("gateway_request_duration_seconds_count"), kClients * kFramesEach);
}

// Upstream mode: a gateway in front of backends that are gateways in their
// default mode (they answer with the reversed payload).
class UpstreamMetricsTest : public MetricsTest {
 protected:
  // Starts `count` backends and the gateway in front of the first
  // `configured` of them.
  void StartProxy(int count, int configured) {
    for (int i = 0; i < count; ++i) {
      GatewayOptions options;
      options.reactors = 1;
      absl::StatusOr<std::unique_ptr<Gateway>> backend = StartTestGateway(std::move(options));
      ASSERT_TRUE(backend.ok()) << backend.status();
      addresses_.push_back(absl::StrCat("127.0.0.1:", (*backend)->port()));
      backends_.push_back(*std::move(backend));
    }
    GatewayOptions options;
    for (int i = 0; i < configured; ++i) options.upstream.backends.push_back({addresses_[i], 1});
    options.upstream.probe_interval = absl::ZeroDuration();  // no probe traffic: exact counts
    ASSERT_NO_FATAL_FAILURE(StartGateway(std::move(options)));
  }

  void TearDown() override {
    MetricsTest::TearDown();
    for (auto& backend : backends_) backend->Shutdown(absl::Seconds(5));
  }

  // `name`{backend="<address i>"<more>}
  std::string Series(const std::string& name, int i, const std::string& more = "") const {
    return absl::StrCat(name, "{backend=\"", addresses_[i], "\"", more, "}");
  }

  std::vector<std::unique_ptr<Gateway>> backends_;
  std::vector<std::string> addresses_;
};

TEST_F(UpstreamMetricsTest, CountsProxiedTrafficExactly) {
  ASSERT_NO_FATAL_FAILURE(StartProxy(1, 1));
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
  const std::string expected = ReversedFrame("abc") + ReversedFrame("hello") + ReversedFrame("x");
  ASSERT_OK(client.WriteAll(Frame("abc") + Frame("hello") + Frame("x")));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadExactly(expected.size()));
  EXPECT_EQ(got, expected);

  const Exposition e = ScrapeUntil([&](const Exposition& s) {
    return s.Value(Series("gateway_upstream_responses_total", 0)) == 3 &&
           s.Value(Series("gateway_upstream_inflight", 0)) == 0;
  });
  EXPECT_EQ(e.Value(Series("gateway_upstream_requests_total", 0)), 3);
  EXPECT_EQ(e.Value(Series("gateway_upstream_pending", 0)), 0);
  EXPECT_EQ(e.Count("gateway_upstream_errors_total"), 4);  // timeout, reset, connect, protocol
  EXPECT_EQ(e.Sum("gateway_upstream_errors_total"), 0);
  EXPECT_EQ(e.Value(R"(gateway_upstream_unrouted_total{reason="no_backend"})"), 0);
  EXPECT_EQ(e.Value(R"(gateway_upstream_unrouted_total{reason="overload"})"), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_redispatched_total", 0)), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_ejections_total", 0)), 0);
  EXPECT_EQ(e.Sum("gateway_upstream_probes_total"), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_healthy", 0)), 1);
  EXPECT_EQ(e.Value(Series("gateway_upstream_backend_state", 0, R"(,state="healthy")")), 1);
  EXPECT_EQ(e.Sum("gateway_upstream_backend_state"), 1);
  EXPECT_EQ(e.Value(Series("gateway_upstream_weight", 0)), 1);
  const double connections = e.Value(Series("gateway_upstream_connections", 0));
  EXPECT_GE(connections, 1);
  EXPECT_LE(connections, kReactors);  // one per reactor (--upstream_connections=1)
  EXPECT_EQ(e.Value(Series("gateway_upstream_request_duration_seconds_count", 0)), 3);
  EXPECT_GT(e.Value(Series("gateway_upstream_request_duration_seconds_sum", 0)), 0);
  // Every request went out in some write; three pipelined frames in 1..3 writes.
  EXPECT_EQ(e.Value("gateway_upstream_write_frames_sum"), 3);
  EXPECT_GE(e.Value("gateway_upstream_write_frames_count"), 1);
  EXPECT_LE(e.Value("gateway_upstream_write_frames_count"), 3);
  // The client-side counters see the same frames.
  EXPECT_EQ(e.Sum("gateway_frames_received_total"), 3);
}

TEST_F(UpstreamMetricsTest, BackendsAddedAndRemovedAtRuntimeComeAndGo) {
  ASSERT_NO_FATAL_FAILURE(StartProxy(2, 1));
  Exposition e = Scrape();
  EXPECT_EQ(e.Count("gateway_upstream_requests_total"), 1);
  EXPECT_EQ(e.Count(Series("gateway_upstream_requests_total", 1)), 0);

  ASSERT_OK(gw_->AddBackend({addresses_[1], 5}).status());
  e = Scrape();
  EXPECT_EQ(e.Count("gateway_upstream_requests_total"), 2);
  EXPECT_EQ(e.Value(Series("gateway_upstream_weight", 1)), 5);
  EXPECT_EQ(e.Count("gateway_upstream_backend_state"), 2 * kNumBackendStates);

  // Traffic to both, so the removed one has non-zero series to lose.
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
  for (int i = 0; i < 12; ++i) ASSERT_OK(client.RoundTrip(absl::StrCat("frame ", i)));
  e = ScrapeUntil([&](const Exposition& s) { return s.Sum("gateway_upstream_responses_total") == 12; });
  EXPECT_GT(e.Value(Series("gateway_upstream_requests_total", 1)), 0);

  ASSERT_OK(gw_->RemoveBackend(addresses_[1], absl::Seconds(5)).status());
  e = Scrape();
  for (const auto& [series, value] : e.samples) {
    EXPECT_FALSE(absl::StrContains(series, addresses_[1])) << series << " lingers after RemoveBackend";
  }
  EXPECT_EQ(e.Count("gateway_upstream_requests_total"), 1);
  EXPECT_EQ(e.Count("gateway_upstream_backend_state"), kNumBackendStates);
  EXPECT_EQ(e.Value(Series("gateway_upstream_healthy", 0)), 1);
}

TEST_F(UpstreamMetricsTest, CountsRequestsNoBackendCouldTake) {
  ASSERT_NO_FATAL_FAILURE(StartProxy(1, 1));
  // Draining: no new requests, so none is healthy.
  ASSERT_OK(gw_->DrainBackend(addresses_[0], absl::Seconds(5)).status());
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip("abc"));
  EXPECT_EQ(reply, "");  // the error response: the empty frame
  const Exposition e = ScrapeUntil(
      [](const Exposition& s) { return s.Value(R"(gateway_upstream_unrouted_total{reason="no_backend"})") == 1; });
  EXPECT_EQ(e.Value(R"(gateway_upstream_unrouted_total{reason="overload"})"), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_requests_total", 0)), 0);
  EXPECT_EQ(e.Sum("gateway_upstream_errors_total"), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_healthy", 0)), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_backend_state", 0, R"(,state="draining")")), 1);
  EXPECT_EQ(e.Sum("gateway_upstream_backend_state"), 1);
}

TEST_F(UpstreamMetricsTest, ReportsARefusingBackendEjectedAndItsRequestsUnrouted) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket refused, BindLoopback());  // bound, not listening: refused
  addresses_.push_back(absl::StrCat("127.0.0.1:", refused.port()));
  GatewayOptions options;
  options.upstream.backends.push_back({addresses_[0], 1});
  options.upstream.probe_interval = absl::ZeroDuration();
  options.upstream.eject_after = 1;
  ASSERT_NO_FATAL_FAILURE(StartGateway(std::move(options)));
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip("anyone?"));
    EXPECT_EQ(reply, "") << i;  // the error response
  }
  // Each reactor's upstream connection fails on its own, so a second
  // connect error may land after the first ejected the backend: compare
  // the scrape with the RPC's picture taken right after it, until they agree.
  BackendInfo info;
  const Exposition e = ScrapeUntil([&](const Exposition& s) {
    absl::StatusOr<BackendInfo> now = gw_->GetBackend(addresses_[0]);
    if (!now.ok()) return false;
    info = *std::move(now);
    return s.Value(Series("gateway_upstream_backend_state", 0, R"(,state="ejected")")) == 1 &&
           s.Value(R"(gateway_upstream_unrouted_total{reason="no_backend"})") == 3 &&
           s.Value(Series("gateway_upstream_errors_total", 0, R"(,reason="connect")")) ==
               static_cast<double>(info.errors[static_cast<int>(UpstreamError::kConnect)]);
  });
  EXPECT_GT(info.errors[static_cast<int>(UpstreamError::kConnect)], 0u);
  EXPECT_EQ(e.Value(Series("gateway_upstream_errors_total", 0, R"(,reason="connect")")),
            static_cast<double>(info.errors[static_cast<int>(UpstreamError::kConnect)]));
  EXPECT_EQ(e.Value(Series("gateway_upstream_errors_total", 0, R"(,reason="timeout")")), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_errors_total", 0, R"(,reason="reset")")), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_errors_total", 0, R"(,reason="protocol")")), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_ejections_total", 0)), 1);
  EXPECT_EQ(e.Value(Series("gateway_upstream_healthy", 0)), 0);
  EXPECT_EQ(e.Sum("gateway_upstream_backend_state"), 1);
  EXPECT_EQ(e.Value(Series("gateway_upstream_connections", 0)), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_requests_total", 0)), 0);
  EXPECT_EQ(e.Value(Series("gateway_upstream_responses_total", 0)), 0);
  EXPECT_EQ(e.Value(R"(gateway_upstream_unrouted_total{reason="overload"})"), 0);
}

TEST(MetricsServerTest, ReportsABusyPortAndABadAddress) {
  GatewayOptions options;
  options.reactors = 1;
  ASSERT_OK_AND_ASSIGN(const std::unique_ptr<Gateway> gw, StartTestGateway(options));
  ASSERT_OK_AND_ASSIGN(const std::unique_ptr<MetricsServer> first, MetricsServer::Start("127.0.0.1:0", gw.get()));
  const std::string taken = absl::StrCat("127.0.0.1:", (first)->port());
  absl::StatusOr<std::unique_ptr<MetricsServer>> busy = MetricsServer::Start(taken, gw.get());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable) << busy.status();
  EXPECT_NE(busy.status().message().find("Address already in use"), std::string::npos) << busy.status();
  for (const char* bad : {"[::1]:0", "nonsense", "127.0.0.1:70000", ":9464", "127.0.0.1:"}) {
    EXPECT_EQ(MetricsServer::Start(bad, gw.get()).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  (gw)->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace gateway::testing
