// The Gateway's control calls while traffic flows: switching the trigger
// mode under load, and Shutdown (answers what has arrived, then EOF; the API
// says UNAVAILABLE afterwards).
#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gateway/gateway.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class ControlTest : public GatewayIntegrationTest {};

TEST_P(ControlTest, TriggerModeSwitchWhileTrafficFlows) {
  StartGateway();
  if (!on_epoll()) {
    // The trigger mode is epoll's: elsewhere it is refused, naming the model.
    const absl::Status status = gw_->SetTriggerMode(TriggerMode::kLevel);
    EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
    EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr(IoModelName(GetParam().model)));
    EXPECT_EQ(gw_->trigger_mode_switches(), 0u);
    EXPECT_EQ(gw_->io_model(), GetParam().model);
    return;
  }
  constexpr int kClients = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
      if (!client.ok()) {
        ++failures;
        return;
      }
      std::mt19937_64 rng(200 + c);
      for (int round = 0; round < 100000 && !stop.load(); ++round) {
        std::string requests, expected;
        for (int f = 0; f < 10; ++f) {
          const std::string payload = RandomBytes(rng, 1 + rng() % (f == 0 ? 70000 : 500));
          requests += Frame(payload);
          expected += ReversedFrame(payload);
        }
        std::thread writer([&] {
          if (!client->WriteAll(requests).ok()) ++failures;
        });
        absl::StatusOr<std::string> got = client->ReadExactly(expected.size());
        writer.join();
        if (!got.ok() || *got != expected) {
          ++failures;
          return;
        }
        ++batches;
      }
    });
  }
  const TriggerMode mode = GetParam().mode;
  const TriggerMode other = mode == TriggerMode::kEdge ? TriggerMode::kLevel : TriggerMode::kEdge;
  for (int i = 0; i < 20 && failures.load() == 0; ++i) {
    const int before = batches.load();
    ASSERT_OK(gw_->SetTriggerMode(i % 2 == 0 ? other : mode));
    EXPECT_TRUE(WaitUntil([&] { return batches.load() >= before + 2 || failures.load() > 0; }));
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(gw_->trigger_mode(), mode);
  EXPECT_EQ(gw_->trigger_mode_switches(), 20u);
  // Switching to the current mode is not a switch.
  ASSERT_OK(gw_->SetTriggerMode(mode));
  EXPECT_EQ(gw_->trigger_mode_switches(), 20u);
}

// Gateway::Shutdown in process: what has arrived is answered, then EOF; the
// port is closed; the API says UNAVAILABLE afterwards; a second Shutdown is
// a no-op.
TEST_P(ControlTest, ShutdownAnswersWhatArrivedThenEof) {
  StartGateway();
  TestClient idle = Connect();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  ASSERT_OK(FindConnection(*gw_, idle));
  std::mt19937_64 rng(13);
  std::string requests, expected;
  for (int i = 0; i < 300; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 500);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  requests += "000";  // and the start of a frame that will never be finished
  ASSERT_OK(client.WriteAll(requests));
  ASSERT_TRUE(AwaitBytesIn(info.fd, requests.size()));
  const int port = gw_->port();
  std::thread stopper([&] { gw_->Shutdown(absl::Seconds(20)); });
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof());
  EXPECT_TRUE(got == expected) << got.size() << " of " << expected.size() << " bytes";
  EXPECT_OK(idle.ExpectEof());
  client.Close();
  idle.Close();
  stopper.join();
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kShutdown), 2u);
  absl::StatusOr<TestClient> late = TestClient::Connect(port);
  EXPECT_FALSE(late.ok());
  EXPECT_TRUE(absl::IsUnavailable(gw_->GetConnection(info.fd).status()));
  EXPECT_TRUE(absl::IsUnavailable(gw_->ListConnections(ListQuery{}).status()));
  EXPECT_TRUE(absl::IsUnavailable(gw_->CloseConnection(info.fd, /*id=*/0, CloseMode::kFlush)));
  if (on_epoll()) EXPECT_TRUE(absl::IsUnavailable(gw_->SetTriggerMode(TriggerMode::kLevel)));
  const IoModel other_model = GetParam().model == IoModel::kPoll ? IoModel::kEpoll : IoModel::kPoll;
  if (IsLiveSwitchable(GetParam().model)) EXPECT_TRUE(absl::IsUnavailable(gw_->SetIoModel(other_model)));
  gw_->Shutdown(absl::Seconds(1));  // idempotent
}

INSTANTIATE_ON_ALL_BACKENDS(ControlTest);

}  // namespace
}  // namespace gateway::testing
