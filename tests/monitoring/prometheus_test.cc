// The monitoring stack for real: the gateway binary under a bounded load,
// scraped by Debian's `prometheus` on a loopback port with a temporary config
// and storage; every query of the Grafana dashboard (panels, annotations,
// variables) evaluated through Prometheus's HTTP API with Grafana's variables
// substituted must return data. A second gateway, in upstream mode in front
// of the first, gives the Upstreams row its series. Also `promtool check
// metrics` on a real scrape of each. Everything runs on 127.0.0.1 with ports
// picked at run time, and the fixture stops every process and removes its
// temporary directory.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/monitoring/dashboard.h"
#include "tests/support/http_client.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

constexpr char kLoopback[] = "127.0.0.1";

// A port that was free a moment ago (Prometheus cannot report the port it
// bound when given port 0); the caller retries if it is taken meanwhile.
int PickFreePort() {
  absl::StatusOr<LoopbackSocket> bound = BindLoopback();
  return bound.ok() ? bound->port() : 0;
}

// The real gateway binary on 127.0.0.1 with every port picked by the kernel.
struct GatewayProcess {
  std::unique_ptr<Subprocess> process;
  int data_port = 0;
  int metrics_port = 0;
  int control_port = 0;

  // `extra` flags are added; `name` names the log file.
  static GatewayProcess Start(const TempDir& dir, const std::vector<std::string>& extra = {},
                              const std::string& name = "gateway") {
    GatewayProcess gw;
    std::vector<std::string> args = {
        GATEWAY_BINARY, "--listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0", "--control_listen=127.0.0.1:0",
        "--reactors=2", "--drain_timeout=2s"};
    args.insert(args.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(args, dir.File(name + ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return gw;
    gw.process = *std::move(p);
    const absl::Time deadline = absl::Now() + absl::Seconds(20);
    gw.metrics_port = WaitForReadyPort(*gw.process, "metrics_port", deadline);
    gw.control_port = WaitForReadyPort(*gw.process, "control_port", deadline);
    gw.data_port = WaitForReadyPort(*gw.process, "data_port", deadline);
    EXPECT_TRUE(gw.metrics_port > 0 && gw.control_port > 0 && gw.data_port > 0) << gw.process->Log();
    return gw;
  }

  // A gateway in upstream mode in front of `backend` (a gateway in its
  // default mode, which answers like one).
  static GatewayProcess StartProxy(const TempDir& dir, const GatewayProcess& backend) {
    return Start(dir, {absl::StrCat("--upstream=127.0.0.1:", backend.data_port)}, "proxy");
  }
};

// Connections with pipelined frames, and now and then a malformed header, in
// a loop bounded in time (Stop()) and in count.
class Load {
 public:
  explicit Load(int port) : thread_([this, port] { Run(port); }) {}
  ~Load() { Stop(); }
  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  uint64_t frames() const { return frames_.load(); }
  int failures() const { return failures_.load(); }

 private:
  void Run(int port) {
    // A few connections stay open throughout, so the gauges have something.
    std::vector<TestClient> held;
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<TestClient> c = TestClient::Connect(port);
      if (c.ok()) held.push_back(*std::move(c));
    }
    for (int round = 0; round < 100000 && !stop_.load(); ++round) {
      absl::StatusOr<TestClient> c = TestClient::Connect(port);
      if (!c.ok()) {
        ++failures_;
        continue;
      }
      if (round % 10 == 9) {  // a protocol error closes it
        if (!c->WriteAll("bad!!").ok() || !c->ExpectEof().ok()) ++failures_;
        continue;
      }
      std::string request;
      std::string expected;
      for (int f = 0; f < 16; ++f) {
        const std::string payload = absl::StrCat("round ", round, " frame ", f);
        request += Frame(payload);
        expected += ReversedFrame(payload);
      }
      absl::StatusOr<std::string> got;
      if (!c->WriteAll(request).ok() || !(got = c->ReadExactly(expected.size())).ok() || *got != expected) {
        ++failures_;
        continue;
      }
      frames_ += 16;
      for (TestClient& h : held) {
        if (!h.RoundTrip("keepalive").ok()) ++failures_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> frames_{0};
  std::atomic<int> failures_{0};
  std::thread thread_;
};

class PrometheusTest : public ::testing::Test {
 protected:
  // Starts prometheus scraping the gateways' metrics ports every second;
  // returns once it answers /-/ready.
  void StartPrometheus(const std::vector<int>& metrics_ports) {
    std::string targets;
    for (int port : metrics_ports) absl::StrAppend(&targets, targets.empty() ? "" : ", ", "'127.0.0.1:", port, "'");
    const std::string config = absl::StrCat(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: gateway\n    static_configs:\n      - targets: [",
        targets, "]\n");
    ASSERT_TRUE(WriteFile(dir_.File("prometheus.yml"), config));
    for (int attempt = 0; attempt < 3; ++attempt) {
      prometheus_port_ = PickFreePort();
      absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(
          {"prometheus", "--config.file=" + dir_.File("prometheus.yml"), "--storage.tsdb.path=" + dir_.File("data"),
           absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_), "--log.level=warn"},
          dir_.File("prometheus.log"));
      ASSERT_TRUE(p.ok()) << p.status();
      prometheus_ = *std::move(p);
      const bool ready = WaitUntil(
          [&] {
            if (!prometheus_->Running()) return true;
            absl::StatusOr<HttpResponse> r =
                HttpGet(kLoopback, prometheus_port_, "/-/ready", Deadline(absl::Seconds(2)));
            return r.ok() && r->status == 200;
          },
          Deadline(absl::Seconds(30)));
      if (ready && prometheus_->Running()) return;
      prometheus_->Stop();  // most likely the port was taken: try another
    }
    FAIL() << "prometheus did not start: " << prometheus_->Log();
  }

  // Runs a PromQL range query over [start, now] at 1 s steps; returns the
  // "result" list, or fails the test.
  google::protobuf::ListValue RangeQuery(const std::string& expr, absl::Time start) {
    const std::string target =
        absl::StrCat("/api/v1/query_range?query=", UrlEncode(expr), "&start=", absl::ToUnixSeconds(start),
                     "&end=", absl::ToUnixSeconds(absl::Now()), "&step=1");
    absl::StatusOr<HttpResponse> r = HttpGet(kLoopback, prometheus_port_, target, Deadline());
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return {};
    absl::StatusOr<Struct> body = ParseJsonObject(r->body);
    EXPECT_TRUE(body.ok()) << body.status() << r->body;
    EXPECT_EQ(StringField(*body, "status"), "success") << expr << ": " << r->body;
    return ListField(ObjectField(*body, "data"), "result");
  }

  // True if some series of `result` has a finite value.
  static bool HasFiniteValue(const google::protobuf::ListValue& result) {
    for (const Value& series : result.values()) {
      for (const Value& point : ListField(series.struct_value(), "values").values()) {
        double v = NAN;
        if (point.list_value().values_size() == 2 &&
            absl::SimpleAtod(point.list_value().values(1).string_value(), &v) && std::isfinite(v)) {
          return true;
        }
      }
    }
    return false;
  }

  // Queries until `expr` has a finite value within the last `window`.
  bool WaitForData(const std::string& expr, absl::Duration window, absl::Duration timeout) {
    return WaitUntil([&] { return HasFiniteValue(RangeQuery(expr, absl::Now() - window)); }, Deadline(timeout));
  }

  void TearDown() override {
    if (prometheus_) {
      EXPECT_EQ(prometheus_->Stop(), 0) << prometheus_->Log();
    }
  }

  TempDir dir_;
  std::unique_ptr<Subprocess> prometheus_;
  int prometheus_port_ = 0;
};

// A gateway in its default mode and one in upstream mode in front of it,
// both under load: promtool accepts a scrape of each without a finding.
TEST_F(PrometheusTest, PromtoolAcceptsARealScrape) {
  ASSERT_FALSE(dir_.path().empty());
  GatewayProcess gw = GatewayProcess::Start(dir_);
  ASSERT_GT(gw.metrics_port, 0);
  GatewayProcess proxy = GatewayProcess::StartProxy(dir_, gw);
  ASSERT_GT(proxy.metrics_port, 0);
  {
    Load load(gw.data_port);
    Load proxied(proxy.data_port);
    ASSERT_TRUE(WaitUntil([&] { return load.frames() >= 200 && proxied.frames() >= 200; }, Deadline()));
    load.Stop();
    proxied.Stop();
    EXPECT_EQ(load.failures(), 0);
    EXPECT_EQ(proxied.failures(), 0);
  }
  for (const auto& [process, family] : {std::pair{&gw, "gateway_request_duration_seconds_bucket"},
                                        std::pair{&proxy, "gateway_upstream_request_duration_seconds_bucket"}}) {
    SCOPED_TRACE(family);
    absl::StatusOr<HttpResponse> scrape = HttpGet(kLoopback, process->metrics_port, "/metrics", Deadline());
    ASSERT_TRUE(scrape.ok()) << scrape.status();
    ASSERT_EQ(scrape->status, 200);
    ASSERT_TRUE(absl::StrContains(scrape->body, family));
    ASSERT_TRUE(WriteFile(dir_.File("scrape.txt"), scrape->body));
    absl::StatusOr<CommandResult> check =
        RunCommand({"promtool", "check", "metrics"}, dir_.File("scrape.txt"), absl::Seconds(30));
    ASSERT_TRUE(check.ok()) << check.status();
    EXPECT_EQ(check->exit_code, 0) << check->output;
    EXPECT_EQ(check->output, "") << "promtool has lint findings";
  }
  // Only the proxy exports upstream series.
  absl::StatusOr<HttpResponse> plain = HttpGet(kLoopback, gw.metrics_port, "/metrics", Deadline());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(absl::StrContains(plain->body, "gateway_upstream_"));
  EXPECT_EQ(proxy.process->Stop(), 0) << proxy.process->Log();
  EXPECT_EQ(gw.process->Stop(), 0) << gw.process->Log();
}

TEST_F(PrometheusTest, EveryDashboardQueryReturnsData) {
  ASSERT_FALSE(dir_.path().empty());
  const std::string json = ReadFileOrEmpty(std::string(GATEWAY_SOURCE_DIR) + "/deploy/grafana/dashboards/gateway.json");
  absl::StatusOr<Struct> dashboard = ParseJsonObject(json);
  ASSERT_TRUE(dashboard.ok()) << dashboard.status();
  const std::vector<DashboardQuery> queries = DashboardQueries(*dashboard);
  ASSERT_GE(queries.size(), 20u);

  // A gateway, and one in upstream mode in front of it (for the Upstreams
  // row), each under its own load; Prometheus scrapes both.
  GatewayProcess gw = GatewayProcess::Start(dir_);
  ASSERT_GT(gw.metrics_port, 0);
  GatewayProcess proxy = GatewayProcess::StartProxy(dir_, gw);
  ASSERT_GT(proxy.metrics_port, 0);
  ASSERT_NO_FATAL_FAILURE(StartPrometheus({gw.metrics_port, proxy.metrics_port}));
  const absl::Time start = absl::Now();
  Load load(gw.data_port);
  Load proxied(proxy.data_port);

  // Enough scrapes for rate() windows, then a trigger-mode switch through the
  // control plane for the annotation, then a few scrapes more.
  ASSERT_TRUE(
      WaitForData("count_over_time(gateway_frames_received_total[10s]) >= 4", absl::Seconds(5), absl::Seconds(30)))
      << prometheus_->Log();
  auto stub = gateway::v1::GatewayControl::NewStub(
      grpc::CreateChannel(absl::StrCat(kLoopback, ":", gw.control_port), grpc::InsecureChannelCredentials()));
  gateway::v1::SetTriggerModeRequest request;
  request.set_mode(gateway::v1::TRIGGER_MODE_LEVEL);
  gateway::v1::TriggerModeStatus reply;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status switched = stub->SetTriggerMode(&context, request, &reply);
  ASSERT_TRUE(switched.ok()) << switched.error_message();
  ASSERT_TRUE(WaitForData(R"(gateway_trigger_mode{mode="level"} == 1)", absl::Seconds(5), absl::Seconds(20)));
  ASSERT_TRUE(
      WaitForData("count_over_time(gateway_trigger_mode_switches_total[10s]) >= 3 and "
                  "gateway_trigger_mode_switches_total == 1",
                  absl::Seconds(5), absl::Seconds(20)));
  // Then an IO-model switch, under the load, for its panels and annotation.
  // Without a poll back-end in the build the switch annotation has nothing
  // to mark: its query must still run, but may return nothing.
  gateway::v1::SetIoModelRequest io_request;
  io_request.set_model(gateway::v1::IO_MODEL_POLL);
  gateway::v1::IoModelStatus io_reply;
  grpc::ClientContext io_context;
  io_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  const grpc::Status io_switched = stub->SetIoModel(&io_context, io_request, &io_reply);
  const bool have_io_switch = io_switched.error_code() != grpc::StatusCode::UNIMPLEMENTED;
  if (have_io_switch) {
    ASSERT_TRUE(io_switched.ok()) << io_switched.error_message();
    ASSERT_TRUE(WaitForData(R"(gateway_io_model{model="poll"} == 1)", absl::Seconds(5), absl::Seconds(20)));
    ASSERT_TRUE(
        WaitForData("count_over_time(gateway_io_model_switches_total[10s]) >= 3 and "
                    "gateway_io_model_switches_total == 1",
                    absl::Seconds(5), absl::Seconds(20)));
  }

  // The proxy's traffic has reached its backend long enough for rate().
  ASSERT_TRUE(
      WaitForData("count_over_time(gateway_upstream_write_frames_count[10s]) >= 4 and "
                  "rate(gateway_upstream_write_frames_count[4s]) > 0",
                  absl::Seconds(5), absl::Seconds(30)))
      << proxy.process->Log();

  // Grafana's variables as it would set them for a 1 s scrape interval and a
  // 1 s step: $__rate_interval = max($__interval + scrape, 4 * scrape).
  const absl::Duration elapsed = absl::Now() - start;
  const std::map<std::string, std::string> variables = {
      {"__rate_interval", "4s"},
      {"__interval", "1s"},
      {"__range", absl::StrCat(absl::ToInt64Seconds(elapsed) + 1, "s")},
      {"job", "gateway"},
      {"instance", ".+"},
  };
  for (const DashboardQuery& q : queries) {
    const std::string expr = SubstituteVariables(q.expr, variables);
    SCOPED_TRACE(absl::StrCat(q.where, ": ", expr));
    const google::protobuf::ListValue result = RangeQuery(expr, start);
    if (!have_io_switch && absl::StrContains(expr, "changes(gateway_io_model_switches_total")) continue;
    EXPECT_GT(result.values_size(), 0) << "no series";
    EXPECT_TRUE(HasFiniteValue(result)) << "no finite value";
  }
  load.Stop();
  proxied.Stop();
  EXPECT_EQ(load.failures(), 0);
  EXPECT_GT(load.frames(), 0u);
  EXPECT_EQ(proxied.failures(), 0);
  EXPECT_GT(proxied.frames(), 0u);
  EXPECT_EQ(proxy.process->Stop(), 0) << proxy.process->Log();
  EXPECT_EQ(gw.process->Stop(), 0) << gw.process->Log();
}

TEST(GatewayBinaryTest, BusyMetricsPortIsOneLineAndExitStatus1) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket holder, ListenOnLoopback(1));
  ASSERT_OK_AND_ASSIGN(const CommandResult run, RunCommand({GATEWAY_BINARY, "--listen=127.0.0.1:0", "--control_listen=",
                                                            absl::StrCat("--metrics_listen=127.0.0.1:", holder.port())},
                                                           "", absl::Seconds(20)));
  holder.Close();
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(std::count(run.output.begin(), run.output.end(), '\n'), 1) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "--metrics_listen")) << run.output;
  EXPECT_TRUE(absl::StrContains(run.output, "Address already in use")) << run.output;
}

}  // namespace
}  // namespace gateway::testing
