// Drains that must lose nothing: --max_connection_age, DrainConnections and
// a shutdown spread over a window close each connection at a frame boundary,
// after every response to what it sent, with a FIN.
#include <string>
#include <thread>
#include <vector>

#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class DrainTest : public GatewayIntegrationTest {
 protected:
  void StartWithMaxAge(absl::Duration age) {
    ReactorOptions options;
    options.max_connection_age = age;
    options.max_connection_age_jitter = 0;
    StartGateway(options);
  }
};

TEST_P(DrainTest, MaxAgeClosesIdleConnectionsWithAFin) {
  StartWithMaxAge(absl::Milliseconds(200));
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(Connect());
  for (TestClient& client : clients) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip("hello"));
    EXPECT_EQ(reply, "olleh");
  }
  for (TestClient& client : clients) {
    EXPECT_OK(client.ExpectEof());
    client.Close();  // the gateway counts the close once our FIN ends its linger
  }
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kMaxConnectionAge) == 3; }));
}

// A frame half-read when the age passes is read to its end and answered
// before the FIN: the client loses nothing.
TEST_P(DrainTest, MaxAgeWaitsForTheFrameBoundary) {
  StartWithMaxAge(absl::Milliseconds(200));
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  ASSERT_OK(client.WriteAll("00010abcde"));
  ASSERT_TRUE(AwaitBytesIn(info.fd, 10));
  // Well past the age (the drain is due; the half frame holds it back).
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  ASSERT_OK(client.WriteAll("fghij"));
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.ReadFrame());
  EXPECT_EQ(reply, "jihgfedcba");
  EXPECT_OK(client.ExpectEof());
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kMaxConnectionAge) == 1; }));
}

TEST_P(DrainTest, DrainConnectionsClosesTheOldestShare) {
  StartGateway();
  std::vector<TestClient> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(Connect());
    // Answered, so the gateway has it before the next one connects.
    ASSERT_OK_AND_ASSIGN(const std::string reply, clients.back().RoundTrip("abc"));
    ASSERT_EQ(reply, "cba");
  }
  DrainQuery query;
  query.fraction = 0.5;
  ASSERT_OK_AND_ASSIGN(const DrainResult result, gw_->DrainConnections(query));
  EXPECT_EQ(result.matching, 4u);
  EXPECT_EQ(result.selected, 2u);
  EXPECT_OK(clients[0].ExpectEof());
  EXPECT_OK(clients[1].ExpectEof());
  clients[0].Close();
  clients[1].Close();
  for (int i = 2; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, clients[i].RoundTrip("still"));
    EXPECT_EQ(reply, "llits");
  }
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kDrained) == 2; }));

  // None is an hour old; a count larger than what matches takes what there is.
  query.fraction.reset();
  query.count = 10;
  query.min_age = absl::Hours(1);
  ASSERT_OK_AND_ASSIGN(const DrainResult none, gw_->DrainConnections(query));
  EXPECT_EQ(none.matching, 0u);
  EXPECT_EQ(none.selected, 0u);
  query.min_age = absl::ZeroDuration();
  ASSERT_OK_AND_ASSIGN(const DrainResult rest, gw_->DrainConnections(query));
  EXPECT_EQ(rest.matching, 2u);
  EXPECT_EQ(rest.selected, 2u);
  EXPECT_OK(clients[2].ExpectEof());
  EXPECT_OK(clients[3].ExpectEof());
}

TEST_P(DrainTest, DrainConnectionsRefusesBadQueries) {
  StartGateway();
  DrainQuery none;
  EXPECT_EQ(gw_->DrainConnections(none).status().code(), absl::StatusCode::kInvalidArgument);
  DrainQuery both;
  both.fraction = 0.5;
  both.count = 1;
  EXPECT_EQ(gw_->DrainConnections(both).status().code(), absl::StatusCode::kInvalidArgument);
  for (double fraction : {0.0, -0.1, 1.5}) {
    DrainQuery bad;
    bad.fraction = fraction;
    EXPECT_EQ(gw_->DrainConnections(bad).status().code(), absl::StatusCode::kInvalidArgument) << fraction;
  }
  DrainQuery negative;
  negative.count = 1;
  negative.spread = absl::Seconds(-1);
  EXPECT_EQ(gw_->DrainConnections(negative).status().code(), absl::StatusCode::kInvalidArgument);
}

// SIGTERM's drain: each connection closes at a random time within the
// spread, once every whole frame it sent is answered (a frame half-read is
// dropped: the shutdown is bounded, the client resends it elsewhere), with
// a FIN; the shutdown returns when the last is gone.
TEST_P(DrainTest, ShutdownSpreadAnswersEveryWholeFrameThenFins) {
  StartGateway();
  std::vector<TestClient> idle;
  for (int i = 0; i < 3; ++i) idle.push_back(Connect());
  TestClient busy = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, busy));
  ASSERT_OK(busy.WriteAll(Frame("one") + Frame("two") + "00003th"));
  ASSERT_TRUE(AwaitBytesIn(info.fd, 23));
  std::thread shutdown([&] { gw_->Shutdown(absl::Seconds(30), absl::Milliseconds(300)); });
  for (TestClient& client : idle) {
    EXPECT_OK(client.ExpectEof());
    client.Close();
  }
  ASSERT_OK_AND_ASSIGN(const std::string answers, busy.ReadUntilEof());
  EXPECT_EQ(answers, ReversedFrame("one") + ReversedFrame("two"));
  busy.Close();
  shutdown.join();
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kShutdown), 4u);
}

INSTANTIATE_ON_REACTOR_BACKENDS(DrainTest);

TEST(DrainBlockingTest, DrainConnectionsNeedsReactors) {
  GatewayOptions options;
  options.reactor.io_model = IoModel::kBlocking;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Gateway> gw, StartTestGateway(options));
  DrainQuery query;
  query.fraction = 1;
  EXPECT_EQ(gw->DrainConnections(query).status().code(), absl::StatusCode::kFailedPrecondition);
  gw->Shutdown(absl::Seconds(1));
}

}  // namespace
}  // namespace gateway::testing
