// The live LT<->ET switch under load: 32 connections stream pipelined frames
// of varied sizes (some written in small pieces, so frames straddle a switch)
// while another thread flips the trigger mode 200 times through the
// SetTriggerMode RPC. Every response is checked byte for byte and in order;
// every read has a deadline, so a connection that stalls fails the test.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/control/control_fixture.h"
#include "tests/support/test_client.h"

namespace gateway::control::testing {
namespace {

constexpr int kConnections = 32;
constexpr int kFlips = 200;
constexpr int kMinFrames = 20;  // per connection, even if the flips end first
// Bounds on the test: writers stop at whichever comes first.
constexpr int kMaxFrames = 1000000;
constexpr absl::Duration kMaxTime = absl::Seconds(120);

// The client threads stand in for remote machines: lower their priority so
// 64 of them on a small machine do not starve the gateway's reactor threads
// (which would make every control call wait for CPU, not for the gateway).
void LowerThreadPriority() { setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 15); }

// Frame `i` of connection `c`: mostly small, every 16th up to 60000 bytes.
std::string Payload(int c, int i) {
  std::mt19937_64 rng(static_cast<uint64_t>(c) * 1000003u + static_cast<uint64_t>(i));
  const size_t size = i % 16 == 15 ? 1 + rng() % 60000 : 1 + rng() % 4096;
  return RandomBytes(rng, size);
}

// What a writer has sent so far, for its reader. (std::mutex: TSan cannot
// see Debian's absl::Mutex.)
struct Progress {
  std::mutex mu;
  std::condition_variable changed;
  int sent = 0;       // guarded by mu
  bool done = false;  // guarded by mu
};

class LiveSwitchTest : public ControlFixture, public ::testing::WithParamInterface<TriggerMode> {};

TEST_P(LiveSwitchTest, FlipsUnderLoadLoseNothing) {
  GatewayOptions options;
  options.reactors = 2;
  options.reactor.trigger_mode = GetParam();
  Start(options);
  std::vector<TestClient> clients;
  for (int c = 0; c < kConnections; ++c) clients.push_back(Connect());
  std::vector<Progress> progress(kConnections);
  std::atomic<bool> flips_done{false};
  std::atomic<int> failures{0};
  std::atomic<int> writers_stopped{0};
  const absl::Time give_up = absl::Now() + kMaxTime;

  std::vector<std::thread> threads;
  for (int c = 0; c < kConnections; ++c) {
    threads.emplace_back([&, c] {  // writer
      LowerThreadPriority();
      TestClient& client = clients[c];
      int i = 0;
      for (; i < kMaxFrames && absl::Now() < give_up && (i < kMinFrames || !flips_done.load()); ++i) {
        const std::string frame = Frame(Payload(c, i));
        // Every 5th frame goes out in 2..8 sends, so frames straddle switches.
        absl::Status status =
            i % 5 == 0 ? client.WriteInPieces(frame, frame.size() / (2 + i % 7) + 1) : client.WriteAll(frame);
        if (!status.ok()) {
          ADD_FAILURE() << "connection " << c << " frame " << i << ": " << status;
          ++failures;
          break;
        }
        {
          std::lock_guard<std::mutex> lock(progress[c].mu);
          progress[c].sent = i + 1;
        }
        progress[c].changed.notify_one();
      }
      ++writers_stopped;
      {
        std::lock_guard<std::mutex> lock(progress[c].mu);
        progress[c].done = true;
      }
      progress[c].changed.notify_one();
    });
    threads.emplace_back([&, c] {  // reader
      LowerThreadPriority();
      TestClient& client = clients[c];
      for (int i = 0;; ++i) {
        {
          std::unique_lock<std::mutex> lock(progress[c].mu);
          progress[c].changed.wait(lock, [&] { return progress[c].sent > i || progress[c].done; });
          if (progress[c].sent <= i) return;  // the writer is done and all is read
        }
        const std::string expected = ReversedFrame(Payload(c, i));
        absl::StatusOr<std::string> got = client.ReadExactly(expected.size());
        if (!got.ok() || *got != expected) {
          ADD_FAILURE() << "connection " << c << " frame " << i << ": "
                        << (got.ok() ? "response differs" : got.status().ToString());
          ++failures;
          return;  // the writer ends on its own: its writes fail once we close below
        }
      }
    });
  }

  absl::Duration slowest;
  for (int k = 0; k < kFlips && failures.load() == 0; ++k) {
    v1::TriggerModeStatus status;
    const v1::TriggerMode mode =
        (k % 2 == 0) == (GetParam() == TriggerMode::kEdge) ? v1::TRIGGER_MODE_LEVEL : v1::TRIGGER_MODE_EDGE;
    const absl::Time start = absl::Now();
    grpc::Status rpc = SetMode(mode, &status);
    slowest = std::max(slowest, absl::Now() - start);
    ASSERT_TRUE(rpc.ok()) << rpc.error_message();
    EXPECT_EQ(status.mode(), mode);
    EXPECT_EQ(status.switches(), static_cast<uint64_t>(k + 1));
  }
  // Every flip happened with all 32 connections still streaming.
  EXPECT_EQ(writers_stopped.load(), 0);
  flips_done = true;
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);

  // Every frame was answered; each connection ends where the mode ended.
  uint64_t frames = 0;
  for (int c = 0; c < kConnections; ++c) {
    std::lock_guard<std::mutex> lock(progress[c].mu);
    frames += progress[c].sent;
  }
  EXPECT_EQ(gw_->trigger_mode_switches(), static_cast<uint64_t>(kFlips));
  EXPECT_EQ(gw_->trigger_mode(), GetParam());
  v1::ListConnectionsResponse page;
  ASSERT_TRUE(List({}, &page).ok());
  ASSERT_EQ(page.connections_size(), kConnections);
  for (const v1::Connection& c : page.connections()) {
    EXPECT_EQ(c.trigger_mode(), GetParam() == TriggerMode::kEdge ? v1::TRIGGER_MODE_EDGE : v1::TRIGGER_MODE_LEVEL);
  }
  v1::Stats stats;
  ASSERT_TRUE(Stats(&stats).ok());
  EXPECT_EQ(stats.totals().frames_in(), frames);
  EXPECT_EQ(stats.totals().frames_out(), frames);
  EXPECT_EQ(stats.totals().protocol_errors(), 0u);
  std::fprintf(stderr, "%d connections, %llu frames, %d flips, slowest flip %s\n", kConnections,
               static_cast<unsigned long long>(frames), kFlips, absl::FormatDuration(slowest).c_str());
}

INSTANTIATE_TEST_SUITE_P(BothDirections, LiveSwitchTest, ::testing::Values(TriggerMode::kEdge, TriggerMode::kLevel),
                         [](const auto& info) { return std::string(TriggerModeName(info.param)); });

}  // namespace
}  // namespace gateway::control::testing
