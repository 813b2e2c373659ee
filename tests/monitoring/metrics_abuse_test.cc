// Monitoring cannot be blinded: an in-process gateway and MetricsServer on
// 127.0.0.1:0, dozens of TCP connections to the metrics port that send
// nothing (or half a request line) and stall, and a real scrape that must
// still answer 200 with the gateway's metrics within 2 s, while they are open
// and after they are gone. Before the civetweb limits in metrics/metrics.cc
// (2 workers, 30 s request timeout) two silent connections were enough to
// time every scrape out.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "metrics/metrics.h"
#include "tests/support/http_client.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

constexpr int kReactors = 2;
constexpr int kSilentConnections = 50;
constexpr int kStalledRequests = 5;
// What a scrape must answer within, however many clients misbehave.
constexpr absl::Duration kScrapeDeadline = absl::Seconds(2);
// Generous bound on the server hanging up a silent connection (its request
// timeout is 1 s; civetweb's default was 30 s).
constexpr absl::Duration kHangUpDeadline = absl::Seconds(15);

// Single-threaded, like every test body.
class MetricsAbuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RaiseFdLimit();
    GatewayOptions options;
    options.reactors = kReactors;
    absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(std::move(options));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics = MetricsServer::Start("127.0.0.1:0", gw_.get());
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    ASSERT_GT(metrics_->port(), 0);

    // Known data-plane traffic, so the scrapes can be checked exactly: one
    // round trip on a connection that stays open.
    absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
    ASSERT_TRUE(client.ok()) << client.status();
    absl::StatusOr<std::string> reply = client->RoundTrip("abc");
    ASSERT_TRUE(reply.ok()) << reply.status();
    ASSERT_EQ(*reply, "cba");
    data_client_ = *std::move(client);
    ASSERT_TRUE(WaitUntil([&] { return SumStat(*gw_, &ReactorStats::frames_in) == 1; }));
  }

  void TearDown() override {
    abusers_.clear();
    data_client_.Close();
    if (gw_) gw_->Shutdown(absl::Seconds(5));
    metrics_.reset();
    gw_.reset();
  }

  // Opens `count` connections to the metrics port that each send `prefix`
  // (nothing if empty) and then stall.
  void OpenAbusers(int count, const std::string& prefix) {
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<TestClient> c = TestClient::Connect(metrics_->port());
      ASSERT_TRUE(c.ok()) << "abusive connection " << i << ": " << c.status();
      if (!prefix.empty()) {
        ASSERT_TRUE(c->WriteAll(prefix).ok());
      }
      abusers_.push_back(*std::move(c));
    }
  }

  // One real scrape that must answer 200 with the gateway's metrics, exactly
  // as the data plane left them, within kScrapeDeadline.
  void ExpectScrapeAnswers(const char* when) {
    SCOPED_TRACE(when);
    const absl::Time start = absl::Now();
    absl::StatusOr<testing::HttpResponse> response =
        testing::HttpGet("127.0.0.1", metrics_->port(), "/metrics", start + kScrapeDeadline);
    ASSERT_TRUE(response.ok()) << response.status() << " (after " << absl::Now() - start << ")";
    ASSERT_EQ(response->status, 200);
    absl::StatusOr<Exposition> e = testing::ParseExposition(response->body);
    ASSERT_TRUE(e.ok()) << e.status();
    EXPECT_EQ(e->Value("gateway_connections_active"), 1);
    EXPECT_EQ(e->Sum("gateway_connections_accepted_total"), 1);
    EXPECT_EQ(e->Sum("gateway_frames_received_total"), 1);
    EXPECT_EQ(e->Sum("gateway_bytes_received_total"), 8);
    EXPECT_EQ(e->Count("gateway_build_info"), 1);
  }

  std::unique_ptr<Gateway> gw_;
  std::unique_ptr<MetricsServer> metrics_;
  TestClient data_client_;
  std::vector<TestClient> abusers_;  // silent first, then the stalled requests
};

TEST_F(MetricsAbuseTest, SilentAndStalledConnectionsDoNotBlindAScrape) {
  OpenAbusers(kSilentConnections, "");
  OpenAbusers(kStalledRequests, "GET /metr");  // half a request line, never finished
  ASSERT_EQ(abusers_.size(), static_cast<size_t>(kSilentConnections + kStalledRequests));
  // The scrape connects after all of them: it queues behind every one.
  ExpectScrapeAnswers("with the silent and stalled connections open");

  // The server hangs up on each of them by itself: nothing for a silent
  // connection, a 400 for an unfinished request.
  for (int i = 0; i < static_cast<int>(abusers_.size()); ++i) {
    SCOPED_TRACE(i);
    ASSERT_OK_AND_ASSIGN(const std::string got, abusers_[i].ReadUntilEof(absl::Now() + kHangUpDeadline));
    if (i < kSilentConnections) {
      EXPECT_EQ(got, "");
    } else {
      EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.0 400 Bad Request\r\n")) << got;
    }
  }
  abusers_.clear();
  ExpectScrapeAnswers("after they are closed");
}

}  // namespace
}  // namespace gateway::testing
