// Live switches between epoll and io_uring under traffic: clients stream
// pipelined frames of mixed sizes while the gateway flips back and forth;
// every response must come back byte for byte, and every connection close
// cleanly. Skipped where io_uring is refused.
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gateway/gateway.h"
#include "gateway/poller.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

constexpr int kClients = 6;
// At least this many switches, and on until the clients have had this many
// frames answered meanwhile, so the switches land in the traffic; bounded.
constexpr int kMinSwitches = 100;
constexpr uint64_t kMinFrames = 20000;
constexpr int kMaxSwitches = 20000;
constexpr int kMaxRounds = 100000;  // per client

TEST(UringSwitchTest, EpollAndIoUringSwitchesLoseNothingUnderLoad) {
  if (absl::Status probe = ProbeIoModel(IoModel::kIoUring); !probe.ok()) GTEST_SKIP() << probe.message();
  GatewayOptions options;
  options.reactors = 2;
  options.reactor.io_model = IoModel::kEpoll;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Gateway> gw, StartTestGateway(options));

  std::atomic<bool> switching_done{false};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> frames{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      absl::StatusOr<TestClient> client = TestClient::Connect(gw->port());
      if (!client.ok()) {
        ++failures;
        return;
      }
      std::mt19937_64 rng(100 + c);
      // Rounds until the switches are over (and a few after), bounded.
      int after = 0;
      for (int round = 0; round < kMaxRounds && after < 3; ++round) {
        if (switching_done.load()) ++after;
        std::string requests, expected;
        const int n = 1 + static_cast<int>(rng() % 16);
        for (int i = 0; i < n; ++i) {
          // Mostly small, sometimes larger than a ring buffer (4 KiB).
          const size_t size = rng() % 8 == 0 ? 1 + rng() % 20000 : 1 + rng() % 200;
          const std::string payload = RandomBytes(rng, size);
          requests += Frame(payload);
          expected += ReversedFrame(payload);
        }
        if (!client->WriteInPieces(requests, 1 + rng() % 3000).ok()) {
          ++failures;
          return;
        }
        absl::StatusOr<std::string> got = client->ReadExactly(expected.size());
        if (!got.ok() || *got != expected) {
          ADD_FAILURE() << "client " << c << " round " << round << ": "
                        << (got.ok() ? "responses differ" : got.status().ToString());
          ++failures;
          return;
        }
        frames += static_cast<uint64_t>(n);
      }
      EXPECT_OK(client->ShutdownWrite());
      EXPECT_OK(client->ExpectEof());
    });
  }
  // Connections come and go meanwhile: accepted by one back-end, handed
  // over queued, closed in the middle of a switch.
  std::atomic<uint64_t> churned{0};
  std::thread churn([&] {
    std::mt19937_64 rng(7);
    for (int i = 0; i < kMaxRounds && !switching_done.load(); ++i) {
      absl::StatusOr<TestClient> client = TestClient::Connect(gw->port());
      if (!client.ok()) {
        ADD_FAILURE() << client.status();
        ++failures;
        return;
      }
      const std::string payload = RandomBytes(rng, 1 + rng() % 100);
      absl::StatusOr<std::string> got = client->RoundTrip(payload);
      if (!got.ok() || *got != Reversed(payload)) {
        ADD_FAILURE() << "churn " << i << ": " << (got.ok() ? "response differs" : got.status().ToString());
        ++failures;
        return;
      }
      ++churned;
    }
  });
  int switched = 0;
  for (int i = 0; i < kMaxSwitches && (i < kMinSwitches || frames.load() < kMinFrames) && failures.load() == 0; ++i) {
    const IoModel next = i % 2 == 0 ? IoModel::kIoUring : IoModel::kEpoll;
    absl::Status status = gw->SetIoModel(next);
    EXPECT_OK(status);
    if (status.ok()) ++switched;
  }
  switching_done = true;
  for (std::thread& t : clients) t.join();
  churn.join();
  EXPECT_GT(churned.load(), 0u);
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(switched, kMinSwitches);
  EXPECT_GE(frames.load(), kMinFrames);
  ::testing::Test::RecordProperty("switches", switched);
  ::testing::Test::RecordProperty("frames", static_cast<int>(frames.load()));
  EXPECT_TRUE(WaitUntil([&] { return gw->active_connections() == 0; }));
  gw->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace gateway::testing
