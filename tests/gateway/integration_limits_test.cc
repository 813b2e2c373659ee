// Limits and timeouts: the idle timeout and the connection limit.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class LimitsTest : public GatewayIntegrationTest {};

TEST_P(LimitsTest, IdleTimeoutClosesIdleAndStuckClientsOnly) {
  ReactorOptions reactor;
  reactor.idle_timeout = absl::Milliseconds(300);
  StartGateway(reactor);
  TestClient idle = Connect();
  TestClient stuck = Connect();
  TestClient active = Connect();
  ASSERT_OK(stuck.WriteAll("00100only-part"));
  std::atomic<bool> stop{false};
  std::atomic<int> round_trips{0};
  std::atomic<int> failures{0};
  std::thread pinger([&] {
    for (int i = 0; i < 100000 && !stop.load(); ++i) {
      const std::string ping = absl::StrCat("ping", i);
      absl::StatusOr<std::string> reply = active.RoundTrip(ping);
      if (!reply.ok() || *reply != Reversed(ping)) {
        ++failures;
        return;
      }
      ++round_trips;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // pacing, not synchronisation
    }
  });
  EXPECT_OK(idle.ExpectEof(Deadline()));
  EXPECT_OK(stuck.ExpectEof(Deadline()));
  // The active client keeps going for well over two more timeouts.
  const int seen = round_trips.load();
  EXPECT_TRUE(WaitUntil([&] { return round_trips.load() >= seen + 60 || failures.load() > 0; }));
  stop.store(true);
  pinger.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(const std::string reply, active.RoundTrip("still open"));
  EXPECT_EQ(reply, "nepo llits");
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kIdleTimeout), 2u);
}

TEST_P(LimitsTest, ConnectionsBeyondMaxConnectionsAreClosedAtOnceAndAFreedSlotIsReused) {
  ReactorOptions reactor;
  reactor.max_connections = 3;
  StartGateway(reactor);
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ASSERT_OK(clients.back().RoundTrip(absl::StrCat("client", i)));
  }
  // The fourth is accepted and closed at once.
  TestClient extra = Connect();
  EXPECT_OK(extra.ExpectEof());
  // Counted right after the close the client has just seen.
  EXPECT_TRUE(WaitUntil([&] { return SumStat(*gw_, &ReactorStats::rejected) == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kMaxConnections) == 1; }));
  EXPECT_EQ(gw_->active_connections(), 3);
  // The others are unaffected.
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, clients[i].RoundTrip("abc"));
    EXPECT_EQ(reply, "cba");
  }
  // A freed slot can be taken again.
  clients[0].Close();
  ASSERT_TRUE(WaitUntil([&] { return gw_->active_connections() == 2; }));
  TestClient again = Connect();
  ASSERT_OK_AND_ASSIGN(const std::string reply, again.RoundTrip("again"));
  EXPECT_EQ(reply, "niaga");
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::rejected), 1u);
}

INSTANTIATE_ON_ALL_BACKENDS(LimitsTest);

}  // namespace
}  // namespace gateway::testing
