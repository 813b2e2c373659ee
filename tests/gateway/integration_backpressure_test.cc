// Backpressure and fairness: a client that does not read bounds the output
// queued for it and still gets every byte; a fire hose does not starve a
// quiet client; a half-closed slow reader does not make the reactor spin.
#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gateway/read_scratch.h"
#include "gtest/gtest.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class BackpressureTest : public GatewayIntegrationTest {};

TEST_P(BackpressureTest, BackpressureDeliversEveryByteAndBoundsQueuedOutput) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  const int fd = info.fd;
  constexpr int kFrames = 200;
  std::mt19937_64 rng(6);
  std::vector<std::string> payloads;
  std::string requests;
  requests.reserve(kFrames * kMaxFrameSize);
  for (int i = 0; i < kFrames; ++i) {
    payloads.push_back(RandomBytes(rng, kMaxPayload));
    requests += Frame(payloads.back());
  }

  // Samples the connection while the test runs: the largest output queue seen.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> max_queued{0};
  std::thread monitor([&] {
    while (!stop.load()) {
      absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(fd);
      if (now.ok() && now->need_write > max_queued.load()) max_queued.store(now->need_write);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  absl::Status write_status;
  std::thread writer([&] { write_status = client.WriteAll(requests, Deadline(kBigStep)); });

  // The client does not read: the server must stop reading once its queue
  // passes the high-water mark.
  const size_t high_water = gw_->options().reactor.high_water;
  ConnectionInfo paused;
  EXPECT_TRUE(AwaitConnection(
      fd, [&](const ConnectionInfo& now) { return now.need_write >= high_water; }, Deadline(kBigStep), &paused));
  EXPECT_LT(paused.bytes_in, requests.size()) << "the server read everything without pausing";
  EXPECT_EQ(paused.state, ConnectionState::kWrite);

  // Now read it all: every byte exact, in order.
  for (int i = 0; i < kFrames; ++i) {
    absl::StatusOr<std::string> reply = client.ReadFrame(Deadline(kBigStep));
    ASSERT_OK(reply) << "frame " << i;
    ASSERT_TRUE(*reply == Reversed(payloads[i])) << "frame " << i;
  }
  writer.join();
  EXPECT_OK(write_status);
  ConnectionInfo done;
  EXPECT_TRUE(AwaitConnection(
      fd, [&](const ConnectionInfo& now) { return now.frames_out == kFrames; }, Deadline(), &done));
  stop.store(true);
  monitor.join();
  EXPECT_EQ(done.frames_in, static_cast<uint64_t>(kFrames));
  EXPECT_EQ(done.bytes_in, requests.size());
  EXPECT_EQ(done.bytes_out, requests.size());
  EXPECT_EQ(done.need_write, 0u);
  // Bounded: the high-water mark plus at most one read's worth of responses.
  const uint64_t max_seen = std::max<uint64_t>(max_queued.load(), paused.need_write);
  EXPECT_GE(max_seen, high_water);
  EXPECT_LT(max_seen, high_water + ReadScratch::kSize + 2 * kMaxFrameSize);
}

// A bad header queued behind a backpressured client: every response before
// it still arrives, byte for byte, then EOF.
TEST_P(BackpressureTest, BadHeaderBehindBackpressure) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(12);
  std::string requests, expected;
  for (int i = 0; i < 80; ++i) {
    const std::string payload = RandomBytes(rng, kMaxPayload);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  requests += "9999x" + Frame("never answered");
  absl::Status write_status;
  std::thread writer([&] { write_status = client.WriteAll(requests, Deadline(kBigStep)); });
  absl::StatusOr<std::string> got = client.ReadUntilEof(Deadline(kBigStep));
  writer.join();
  ASSERT_OK(got);
  EXPECT_EQ(got->size(), expected.size());
  EXPECT_TRUE(*got == expected);
  EXPECT_OK(write_status);
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kProtocolError) == 1; }));
}

// One reactor, one client pipelining large frames as fast as it can (and
// reading its responses), another doing small round trips: every one of the
// small client's round trips completes while the fire hose is still sending
// (the per-wakeup read budget). The hose sends until the small client is
// done, so it is never idle meanwhile; kMaxHoseFrames only bounds a broken run.
TEST_P(BackpressureTest, QuietClientIsServedWhileAFireHoseIsSending) {
  GatewayOptions options;
  options.reactors = 1;
  GetParam().ApplyTo(&options.reactor);
  options.reactor.read_budget = 2;
  StartGateway(options);
  TestClient hose = Connect();
  TestClient small = Connect();
  ASSERT_OK(small.RoundTrip("warm"));

  constexpr int kMaxHoseFrames = 100000;
  constexpr int kSmallRoundTrips = 20;
  std::mt19937_64 rng(14);
  const std::string payload = RandomBytes(rng, kMaxPayload);
  const std::string frame = Frame(payload);
  const std::string reversed = Reversed(payload);
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::atomic<int> hose_errors{0};
  std::thread writer([&] {
    for (int i = 0; i < kMaxHoseFrames && !stop.load(); ++i) {
      if (!hose.WriteAll(frame, Deadline(kBigStep)).ok()) {
        ++hose_errors;
        break;
      }
      ++written;
    }
    (void)hose.ShutdownWrite();
  });
  // The hose reads everything concurrently, so it never pauses: every
  // response exact, then EOF.
  std::atomic<int> read{0};
  std::thread reader([&] {
    for (;;) {
      absl::StatusOr<std::string> reply = hose.ReadFrame(Deadline(kBigStep));
      if (!reply.ok()) {
        if (!absl::IsOutOfRange(reply.status())) ++hose_errors;  // anything but EOF
        return;
      }
      if (*reply != reversed) {
        ++hose_errors;
        return;
      }
      ++read;
    }
  });
  EXPECT_TRUE(WaitUntil([&] { return read.load() >= 5; }));  // the hose is flowing
  int small_done = 0;
  for (int i = 0; i < kSmallRoundTrips; ++i) {
    const std::string ping = absl::StrCat("small", i);
    absl::StatusOr<std::string> reply = small.RoundTrip(ping);
    if (!reply.ok()) {
      ADD_FAILURE() << "round trip " << i << ": " << reply.status();
      break;  // the hose threads must still be stopped and joined
    }
    EXPECT_EQ(*reply, Reversed(ping));
    ++small_done;
  }
  const bool hose_running_at_end = written.load() < kMaxHoseFrames && hose_errors.load() == 0;
  stop.store(true);
  writer.join();
  reader.join();
  EXPECT_EQ(hose_errors.load(), 0);
  EXPECT_EQ(read.load(), written.load());
  EXPECT_EQ(small_done, kSmallRoundTrips);
  EXPECT_TRUE(hose_running_at_end) << "the fire hose stopped before the quiet client was done";
}

// A client that half-closes while the server holds output for it, and then
// takes its time to read, must not make the reactor spin (level mode once
// did: EPOLLRDHUP stayed registered on a connection that no longer reads, so
// every epoll_wait returned at once until the output drained). Counted as
// reactor wakeups while the client does nothing for a moment: an idle
// reactor wakes a handful of times, a spinning one hundreds of thousands.
TEST_P(BackpressureTest, NoBusyLoopWhileAHalfClosedClientIsSlowToRead) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  // Large frames, never read, one at a time until the server pauses.
  std::mt19937_64 rng(11);
  std::string expected;
  const size_t high_water = gw_->options().reactor.high_water;
  bool paused = false;
  for (int i = 0; i < 400 && !paused; ++i) {
    const std::string payload = RandomBytes(rng, kMaxPayload);
    ASSERT_OK(client.WriteAll(Frame(payload), Deadline(kBigStep))) << "frame " << i;
    expected += ReversedFrame(payload);
    paused = AwaitConnection(
        info.fd, [&](const ConnectionInfo& now) { return now.need_write >= high_water; },
        absl::Now() + absl::Milliseconds(2));
  }
  ASSERT_TRUE(paused) << "the server never paused";
  ASSERT_OK(client.ShutdownWrite());
  // Every byte and the FIN have reached the server's kernel.
  ASSERT_TRUE(AwaitAcked(client));
  const uint64_t before = SumStat(*gw_, &ReactorStats::wakeups);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a measurement window, not synchronisation
  const uint64_t during = SumStat(*gw_, &ReactorStats::wakeups) - before;
  EXPECT_LT(during, 1000u) << "the reactors spun while the client was not reading";
  // And then every response arrives, then EOF.
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof(Deadline(kBigStep)));
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

INSTANTIATE_ON_REACTOR_BACKENDS(BackpressureTest);

}  // namespace
}  // namespace gateway::testing
