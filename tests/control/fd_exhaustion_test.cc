// The real binary at its fd limit (prlimit --nofile=256) with more clients
// than it has fds. With the default connection limit (derived from the fd
// limit, minus a reserve) the surplus is accepted and closed at once, never
// left hanging; the control plane (GetStats, health) and metrics answer on
// fresh connections during and after; nothing spins; new clients are served
// once the crowd leaves. Over-committed (--max_connections above what the
// fds allow, two reactors sharing the fd table), the surplus is still shed
// promptly, accept failures stay few (no spin) and the gateway recovers.
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/support/health_check.h"
#include "tests/support/http_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

constexpr int kFdLimit = 256;
constexpr int kClients = 400;  // well over the fd limit

// The effective limit the binary printed: "max_connections N (...".
int64_t MaxConnectionsFromLog(Subprocess& process) {
  for (absl::string_view line : absl::StrSplit(process.Log(), '\n')) {
    const size_t at = line.find("max_connections ");
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at + 16);
    int64_t n = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find(' ')), &n)) return n;
  }
  return -1;
}

// A fresh channel (so a new TCP connection the control plane must accept).
std::shared_ptr<grpc::Channel> NewChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // no sharing with earlier channels
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args);
}

absl::StatusOr<v1::Stats> GetStats(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::Stats stats;
  grpc::Status status = v1::GatewayControl::NewStub(channel)->GetStats(&context, v1::GetStatsRequest(), &stats);
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return stats;
}

class FdExhaustionTest : public ::testing::Test {
 protected:
  void SetUp() override { RaiseFdLimit(); }  // the clients live in this process

  void StartGateway(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {"prlimit",
                                     absl::StrCat("--nofile=", kFdLimit, ":", kFdLimit),
                                     "--",
                                     GATEWAY_BINARY,
                                     "--listen=127.0.0.1:0",
                                     "--control_listen=127.0.0.1:0",
                                     "--metrics_listen=127.0.0.1:0"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    absl::StatusOr<std::unique_ptr<Subprocess>> started = Subprocess::Start(argv, dir_.File("gateway.log"));
    ASSERT_TRUE(started.ok()) << started.status();
    gateway_ = *std::move(started);
    data_port_ = WaitForReadyPort(*gateway_, "data_port", Deadline());
    control_port_ = WaitForReadyPort(*gateway_, "control_port", Deadline());
    metrics_port_ = WaitForReadyPort(*gateway_, "metrics_port", Deadline());
    ASSERT_GT(data_port_, 0) << gateway_->Log();
    ASSERT_GT(control_port_, 0) << gateway_->Log();
    ASSERT_GT(metrics_port_, 0) << gateway_->Log();
  }

  // Connects and sends one frame; true if answered, false if the gateway
  // closed or refused the connection. A client left without an answer or an
  // end until the deadline counts in `hung`.
  bool TryOne(TestClient* out, int* hung, absl::Duration wait = absl::Seconds(5)) {
    absl::StatusOr<TestClient> client = TestClient::Connect(data_port_, Deadline(wait));
    if (!client.ok()) {
      if (absl::IsDeadlineExceeded(client.status())) ++*hung;
      return false;
    }
    absl::StatusOr<std::string> reply = client->RoundTrip("ping", Deadline(wait));
    if (!reply.ok()) {
      if (absl::IsDeadlineExceeded(reply.status())) ++*hung;
      return false;
    }
    EXPECT_EQ(*reply, "gnip");
    *out = *std::move(client);
    return true;
  }

  void ExpectControlAndMetricsAnswer(const std::string& when) {
    absl::StatusOr<v1::Stats> stats = GetStats(NewChannel(control_port_));
    EXPECT_TRUE(stats.ok()) << when << ": " << stats.status();
    absl::StatusOr<int> health = HealthCheck(NewChannel(control_port_));
    ASSERT_TRUE(health.ok()) << when << ": " << health.status();
    EXPECT_EQ(*health, grpc::health::v1::HealthCheckResponse::SERVING) << when;
    absl::StatusOr<testing::HttpResponse> scrape =
        testing::HttpGet("127.0.0.1", metrics_port_, "/metrics", Deadline(absl::Seconds(5)));
    ASSERT_TRUE(scrape.ok()) << when << ": " << scrape.status();
    EXPECT_EQ(scrape->status, 200) << when;
  }

  TempDir dir_;
  std::unique_ptr<Subprocess> gateway_;
  int data_port_ = -1;
  int control_port_ = -1;
  int metrics_port_ = -1;
};

TEST_F(FdExhaustionTest, DefaultLimitShedsTheSurplusAndKeepsTheControlPlane) {
  StartGateway({"--reactors=2"});
  const int64_t limit = MaxConnectionsFromLog(*gateway_);
  ASSERT_GT(limit, 0) << gateway_->Log();
  ASSERT_LT(limit, kFdLimit - 64) << "the reserve is missing";

  std::vector<TestClient> served;
  int refused = 0;
  int hung = 0;
  for (int i = 0; i < kClients; ++i) {
    TestClient client;
    if (TryOne(&client, &hung)) {
      served.push_back(std::move(client));
    } else {
      ++refused;
    }
    if (i == kClients / 2) ExpectControlAndMetricsAnswer("during saturation");
  }
  EXPECT_EQ(hung, 0);
  EXPECT_EQ(static_cast<int64_t>(served.size()), limit);
  EXPECT_EQ(refused, kClients - limit);
  ExpectControlAndMetricsAnswer("at saturation");

  absl::StatusOr<v1::Stats> stats = GetStats(NewChannel(control_port_));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->active_connections(), limit);
  EXPECT_EQ(stats->totals().accept_errors(), 0u);  // the limit kept the process off EMFILE
  EXPECT_EQ(stats->totals().rejected(), static_cast<uint64_t>(kClients - limit));
  EXPECT_EQ(stats->totals().closed().max_connections(), static_cast<uint64_t>(kClients - limit));

  served.clear();
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<v1::Stats> now = GetStats(NewChannel(control_port_));
    return now.ok() && now->active_connections() == 0;
  }));
  TestClient again;
  EXPECT_TRUE(TryOne(&again, &hung)) << "not serving after release";
  ExpectControlAndMetricsAnswer("after release");
  again.Close();
  EXPECT_EQ(gateway_->Stop(), 0) << gateway_->Log();
}

TEST_F(FdExhaustionTest, OvercommittedLimitBacksOffInsteadOfSpinning) {
  // The channel is opened before the fds run out; the control plane's own
  // accept is not what this test is about.
  StartGateway({"--reactors=2", "--max_connections=100000"});
  EXPECT_NE(gateway_->Log().find("warning: --max_connections=100000 is above"), std::string::npos) << gateway_->Log();
  std::shared_ptr<grpc::Channel> channel = NewChannel(control_port_);
  ASSERT_TRUE(GetStats(channel).ok());

  std::vector<TestClient> held;
  int hung = 0;
  for (int i = 0; i < kClients; ++i) {
    TestClient client;
    if (TryOne(&client, &hung, absl::Seconds(2))) held.push_back(std::move(client));
  }
  // A client another reactor accepts on the fd freed to shed with is closed
  // at once, so every reactor gets its spare back and nobody is left hanging.
  EXPECT_EQ(hung, 0);
  EXPECT_GT(held.size(), 100u);
  EXPECT_LT(held.size(), static_cast<size_t>(kFdLimit));
  // Out of fds for a while: failures are counted at a bounded rate (a few
  // per shed client, ten back-offs a second per reactor), never millions.
  absl::SleepFor(absl::Seconds(2));
  absl::StatusOr<v1::Stats> stats = GetStats(channel);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->totals().accept_errors(), 0u);
  EXPECT_LT(stats->totals().accept_errors(), 5000u);

  held.clear();
  TestClient again;
  EXPECT_TRUE(WaitUntil([&] {
    int ignored = 0;
    return TryOne(&again, &ignored, absl::Seconds(2));
  })) << "not serving after release";
  again.Close();
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<v1::Stats> now = GetStats(channel);
    return now.ok() && now->active_connections() == 0;
  }));
  EXPECT_EQ(gateway_->Stop(), 0) << gateway_->Log();
}

}  // namespace
}  // namespace gateway::testing
