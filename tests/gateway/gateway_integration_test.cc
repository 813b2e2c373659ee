// End-to-end tests of the data plane in process: a Gateway with two reactors
// on 127.0.0.1:0, real sockets, every test in both trigger modes. Responses
// are checked byte for byte; counters exactly where they are deterministic.
#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gateway/reactor.h"  // Reactor::kScratchSize
#include "gtest/gtest.h"
#include "tests/gateway/decoder_harness.h"
#include "tests/gateway/test_client.h"

namespace gateway {
namespace {

using ::gateway::testing::ClosedCount;
using ::gateway::testing::Deadline;
using ::gateway::testing::FindConnection;
using ::gateway::testing::Frame;
using ::gateway::testing::RandomBytes;
using ::gateway::testing::ReversedFrame;
using ::gateway::testing::StartTestGateway;
using ::gateway::testing::SumStat;
using ::gateway::testing::TestClient;
using ::gateway::testing::WaitUntil;

constexpr absl::Duration kBigStep = absl::Seconds(60);

class GatewayIntegrationTest : public ::testing::TestWithParam<TriggerMode> {
 protected:
  void StartGateway(ReactorOptions reactor = {}, absl::string_view listen = "127.0.0.1:0") {
    GatewayOptions options;
    options.reactors = 2;
    reactor.trigger_mode = GetParam();
    options.reactor = reactor;
    absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(options, listen);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
  }

  // Every test's clients are gone by now: every connection must close, and
  // the books must balance (each accepted connection closed exactly once,
  // with a reason; no gauge left above zero).
  void TearDown() override {
    if (!gw_) return;
    auto balanced = [this] {
      uint64_t closed = 0;
      for (int r = 0; r < kNumCloseReasons; ++r) closed += ClosedCount(*gw_, static_cast<CloseReason>(r));
      int64_t in_states = 0;
      for (int i = 0; i < gw_->num_reactors(); ++i) {
        in_states += gw_->reactor_stats(i).active.Get();
        for (const RelaxedGauge& g : gw_->reactor_stats(i).by_state) in_states += g.Get();
      }
      return gw_->active_connections() == 0 && in_states == 0 &&
             closed == SumStat(*gw_, [](const ReactorStats& s) { return s.accepted.Get(); });
    };
    EXPECT_TRUE(WaitUntil(balanced)) << "connections left open or counters unbalanced";
    for (int i = 0; i < gw_->num_reactors(); ++i) {
      EXPECT_EQ(gw_->reactor_stats(i).active.Get(), 0) << "reactor " << i;
      for (int s = 0; s < kNumConnectionStates; ++s) {
        EXPECT_EQ(gw_->reactor_stats(i).by_state[s].Get(), 0)
            << "reactor " << i << " state " << ConnectionStateName(static_cast<ConnectionState>(s));
      }
    }
    gw_->Shutdown(absl::Seconds(5));
  }

  TestClient Connect(absl::string_view host = "127.0.0.1") {
    absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port(), Deadline(), host);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : TestClient();
  }

  // Waits until the server has read `bytes` bytes from the connection `fd`.
  bool AwaitBytesIn(int fd, uint64_t bytes) {
    return WaitUntil([&] {
      absl::StatusOr<ConnectionInfo> info = gw_->GetConnection(fd);
      return info.ok() && info->bytes_in >= bytes;
    });
  }

  std::unique_ptr<Gateway> gw_;
};

TEST_P(GatewayIntegrationTest, Basic) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_TRUE(client.WriteAll("00003abc").ok());
  absl::StatusOr<std::string> reply = client.ReadExactly(8);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "00003cba");
  ASSERT_TRUE(client.ShutdownWrite().ok());
  EXPECT_TRUE(client.ExpectEof().ok());
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kPeerClosed) == 1; }));
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.frames_in.Get(); }), 1u);
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.frames_out.Get(); }), 1u);
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.bytes_in.Get(); }), 8u);
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.bytes_out.Get(); }), 8u);
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.accepted.Get(); }), 1u);
  EXPECT_EQ(gw_->active_connections(), 0);
}

TEST_P(GatewayIntegrationTest, ThousandSequentialFrames) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 300);
    absl::StatusOr<std::string> reply = client.RoundTrip(payload);
    ASSERT_TRUE(reply.ok()) << "frame " << i << ": " << reply.status();
    ASSERT_EQ(*reply, std::string(payload.rbegin(), payload.rend())) << "frame " << i;
  }
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->frames_in, 1000u);
  EXPECT_EQ(info->frames_out, 1000u);
  EXPECT_EQ(info->bytes_in, info->bytes_out);
}

TEST_P(GatewayIntegrationTest, ThousandPipelinedFramesInOneWrite) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(2);
  std::string requests, expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string payload = absl::StrCat(i, ":", RandomBytes(rng, rng() % 50));
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_TRUE(client.WriteAll(requests).ok());
  absl::StatusOr<std::string> replies = client.ReadExactly(expected.size());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_TRUE(*replies == expected);
  ASSERT_TRUE(client.ShutdownWrite().ok());
  EXPECT_TRUE(client.ExpectEof().ok());
}

TEST_P(GatewayIntegrationTest, FrameDribbledOneByteAtATime) {
  StartGateway();
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  // Each byte is read by the server on its own before the next is sent.
  const std::string payload = "dribble\r\n\0\xff" + std::string("0123456789");
  const std::string stream = "\r\n" + Frame(payload);
  for (size_t i = 0; i < stream.size(); ++i) {
    ASSERT_TRUE(client.WriteAll(stream.substr(i, 1)).ok());
    ASSERT_TRUE(AwaitBytesIn(info->fd, i + 1)) << "byte " << i;
  }
  absl::StatusOr<std::string> reply = client.ReadFrame();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, std::string(payload.rbegin(), payload.rend()));
  // A larger frame, one byte per send, without waiting in between.
  std::mt19937_64 rng(3);
  const std::string big = RandomBytes(rng, 2000);
  ASSERT_TRUE(client.WriteInPieces(Frame(big), 1).ok());
  reply = client.ReadFrame();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_TRUE(*reply == std::string(big.rbegin(), big.rend()));
}

TEST_P(GatewayIntegrationTest, HeaderSplitAcrossWrites) {
  StartGateway();
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  uint64_t sent = 0;
  for (size_t split = 1; split < kHeaderSize; ++split) {
    const std::string payload = absl::StrCat("split-at-", split);
    const std::string frame = Frame(payload);
    ASSERT_TRUE(client.WriteAll(frame.substr(0, split)).ok());
    ASSERT_TRUE(AwaitBytesIn(info->fd, sent + split));
    ASSERT_TRUE(client.WriteAll(frame.substr(split)).ok());
    sent += frame.size();
    absl::StatusOr<std::string> reply = client.ReadFrame();
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, std::string(payload.rbegin(), payload.rend()));
  }
}

TEST_P(GatewayIntegrationTest, OneAndAHalfFramesThenTheRest) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(4);
  for (size_t size : {100u, 5000u, 99999u}) {
    const std::string a = RandomBytes(rng, size);
    const std::string b = RandomBytes(rng, size);
    const std::string frames = Frame(a) + Frame(b);
    const size_t first_part = Frame(a).size() + Frame(b).size() / 2;
    ASSERT_TRUE(client.WriteAll(frames.substr(0, first_part)).ok());
    // The first response arrives while the second frame is still incomplete.
    absl::StatusOr<std::string> reply = client.ReadFrame();
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_TRUE(*reply == std::string(a.rbegin(), a.rend())) << size;
    ASSERT_TRUE(client.WriteAll(frames.substr(first_part)).ok());
    reply = client.ReadFrame();
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_TRUE(*reply == std::string(b.rbegin(), b.rend())) << size;
  }
}

TEST_P(GatewayIntegrationTest, LargestPayloadsPipelined) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(5);
  std::string requests, expected;
  for (int i = 0; i < 8; ++i) {
    const std::string payload = RandomBytes(rng, kMaxPayload);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_TRUE(client.WriteAll(requests.substr(0, kMaxFrameSize)).ok());  // one alone first
  absl::StatusOr<std::string> one = client.ReadExactly(kMaxFrameSize);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(*one == expected.substr(0, kMaxFrameSize));
  std::thread writer([&] { EXPECT_TRUE(client.WriteAll(requests.substr(kMaxFrameSize), Deadline(kBigStep)).ok()); });
  absl::StatusOr<std::string> rest = client.ReadExactly(expected.size() - kMaxFrameSize, Deadline(kBigStep));
  writer.join();
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_TRUE(*rest == expected.substr(kMaxFrameSize));
}

TEST_P(GatewayIntegrationTest, AllByteValuesInAPayload) {
  StartGateway();
  TestClient client = Connect();
  std::string every;
  for (int i = 0; i < 256; ++i) every.push_back(static_cast<char>(i));
  std::string reversed_order(every.rbegin(), every.rend());
  std::string twice = every + reversed_order + "00005" + every;  // digits and headers inside a payload too
  for (const std::string& payload : {every, reversed_order, twice}) {
    absl::StatusOr<std::string> reply = client.RoundTrip(payload);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_TRUE(*reply == std::string(payload.rbegin(), payload.rend()));
  }
  // Every single byte value as a one-byte frame, pipelined.
  std::string requests, expected;
  for (int i = 0; i < 256; ++i) {
    requests += Frame(std::string(1, static_cast<char>(i)));
    expected += ReversedFrame(std::string(1, static_cast<char>(i)));
  }
  ASSERT_TRUE(client.WriteAll(requests).ok());
  absl::StatusOr<std::string> replies = client.ReadExactly(expected.size());
  ASSERT_TRUE(replies.ok()) << replies.status();
  EXPECT_TRUE(*replies == expected);
}

TEST_P(GatewayIntegrationTest, BackpressureDeliversEveryByteAndBoundsQueuedOutput) {
  StartGateway();
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  const int fd = info->fd;
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
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(fd);
        if (!now.ok()) return false;
        paused = *now;
        return now->need_write >= high_water;
      },
      Deadline(kBigStep)));
  EXPECT_LT(paused.bytes_in, requests.size()) << "the server read everything without pausing";
  EXPECT_EQ(paused.state, ConnectionState::kWrite);

  // Now read it all: every byte exact, in order.
  for (int i = 0; i < kFrames; ++i) {
    absl::StatusOr<std::string> reply = client.ReadFrame(Deadline(kBigStep));
    ASSERT_TRUE(reply.ok()) << "frame " << i << ": " << reply.status();
    ASSERT_TRUE(*reply == std::string(payloads[i].rbegin(), payloads[i].rend())) << "frame " << i;
  }
  writer.join();
  EXPECT_TRUE(write_status.ok()) << write_status;
  ConnectionInfo done;
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(fd);
    if (!now.ok()) return false;
    done = *now;
    return now->frames_out == kFrames;
  }));
  stop.store(true);
  monitor.join();
  EXPECT_EQ(done.frames_in, static_cast<uint64_t>(kFrames));
  EXPECT_EQ(done.bytes_in, requests.size());
  EXPECT_EQ(done.bytes_out, requests.size());
  EXPECT_EQ(done.need_write, 0u);
  // Bounded: the high-water mark plus at most one read's worth of responses.
  const uint64_t max_seen = std::max<uint64_t>(max_queued.load(), paused.need_write);
  EXPECT_GE(max_seen, high_water);
  EXPECT_LT(max_seen, high_water + Reactor::kScratchSize + 2 * kMaxFrameSize);
}

TEST_P(GatewayIntegrationTest, BadHeaderAfterGoodFrames) {
  StartGateway();
  TestClient client = Connect();
  TestClient bystander = Connect();
  const std::string good = Frame("one") + "\r\n" + Frame("two") + Frame(std::string(3000, 'x'));
  const std::string expected = ReversedFrame("one") + ReversedFrame("two") + ReversedFrame(std::string(3000, 'x'));
  ASSERT_TRUE(client.WriteAll(good + "12a45" + Frame("never")).ok());
  absl::StatusOr<std::string> got = client.ReadUntilEof();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == expected) << got->size() << " bytes";
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kProtocolError) == 1; }));
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.protocol_errors.Get(); }), 1u);
  // Nothing else is affected.
  absl::StatusOr<std::string> reply = bystander.RoundTrip("still here");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "ereh llits");
}

TEST_P(GatewayIntegrationTest, BadHeaderArrivingInALaterRead) {
  StartGateway();
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(client.WriteAll(Frame("abc") + "000").ok());
  absl::StatusOr<std::string> reply = client.ReadFrame();
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "cba");
  ASSERT_TRUE(AwaitBytesIn(info->fd, 11));
  ASSERT_TRUE(client.WriteAll("00").ok());  // "00000"
  EXPECT_TRUE(client.ExpectEof().ok());
}

TEST_P(GatewayIntegrationTest, HalfCloseDeliversEveryResponseThenEof) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(7);
  std::string requests, expected;
  for (int i = 0; i < 50; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 20000);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_TRUE(client.WriteAll(requests).ok());
  ASSERT_TRUE(client.ShutdownWrite().ok());
  absl::StatusOr<std::string> got = client.ReadUntilEof(Deadline(kBigStep));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == expected) << got->size() << " of " << expected.size() << " bytes";
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kPeerClosed) == 1; }));
}

TEST_P(GatewayIntegrationTest, HalfCloseAfterAnIncompleteFrame) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_TRUE(client.WriteAll(Frame("done") + "00010half").ok());
  ASSERT_TRUE(client.ShutdownWrite().ok());
  absl::StatusOr<std::string> got = client.ReadUntilEof();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, ReversedFrame("done"));
}

TEST_P(GatewayIntegrationTest, ResetMidResponse) {
  StartGateway();
  TestClient bystander = Connect();
  ASSERT_TRUE(bystander.RoundTrip("before").ok());
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  // Large frames, never read, until the server has output it cannot send.
  std::mt19937_64 rng(8);
  const std::string frame = Frame(RandomBytes(rng, kMaxPayload));
  bool stuck = false;
  for (int i = 0; i < 400 && !stuck; ++i) {
    ASSERT_TRUE(client.WriteAll(frame, Deadline(kBigStep)).ok()) << "frame " << i;
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info->fd);
    ASSERT_TRUE(now.ok()) << now.status();
    stuck = now->need_write > 0;
  }
  ASSERT_TRUE(stuck) << "the server never had to queue output";
  ASSERT_TRUE(client.SetLingerZero().ok());
  client.Close();  // RST
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kReset) == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return gw_->active_connections() == 1; }));
  // The gateway and the other client are fine.
  absl::StatusOr<std::string> reply = bystander.RoundTrip("after");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "retfa");
  TestClient fresh = Connect();
  reply = fresh.RoundTrip("fresh");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "hserf");
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kError), 0u);
}

TEST_P(GatewayIntegrationTest, ManyConcurrentConnections) {
  ::gateway::testing::RaiseFdLimit();
  StartGateway();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 125;
  constexpr int kFramesEach = 5;
  std::atomic<int> verified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<TestClient> clients;
      std::vector<std::string> expected;
      for (int c = 0; c < kPerThread; ++c) {
        absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
        if (!client.ok()) {
          ADD_FAILURE() << "connect " << t << "/" << c << ": " << client.status();
          return;
        }
        clients.push_back(*std::move(client));
      }
      // Every client sends all its frames before any reads: all are open at once.
      for (int c = 0; c < kPerThread; ++c) {
        std::string requests, replies;
        for (int f = 0; f < kFramesEach; ++f) {
          const std::string payload = absl::StrCat(t, "/", c, "/", f, ":", RandomBytes(rng, rng() % 200));
          requests += Frame(payload);
          replies += ReversedFrame(payload);
        }
        if (absl::Status s = clients[c].WriteAll(requests); !s.ok()) {
          ADD_FAILURE() << "write " << t << "/" << c << ": " << s;
          return;
        }
        expected.push_back(std::move(replies));
      }
      for (int c = 0; c < kPerThread; ++c) {
        absl::StatusOr<std::string> got = clients[c].ReadExactly(expected[c].size());
        if (!got.ok() || *got != expected[c]) {
          ADD_FAILURE() << "client " << t << "/" << c << ": " << (got.ok() ? "wrong bytes" : got.status().ToString());
          return;
        }
        ++verified;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(verified.load(), kThreads * kPerThread);
  EXPECT_TRUE(WaitUntil([&] { return gw_->active_connections() == 0; }));
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.accepted.Get(); }),
            static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.frames_out.Get(); }),
            static_cast<uint64_t>(kThreads * kPerThread * kFramesEach));
  // SO_REUSEPORT spread them: both reactors served some.
  EXPECT_GT(gw_->reactor_stats(0).accepted.Get(), 0u);
  EXPECT_GT(gw_->reactor_stats(1).accepted.Get(), 0u);
}

TEST_P(GatewayIntegrationTest, IdleTimeoutClosesIdleAndStuckClientsOnly) {
  ReactorOptions reactor;
  reactor.idle_timeout = absl::Milliseconds(300);
  StartGateway(reactor);
  TestClient idle = Connect();
  TestClient stuck = Connect();
  TestClient active = Connect();
  ASSERT_TRUE(stuck.WriteAll("00100only-part").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> round_trips{0};
  std::atomic<int> failures{0};
  std::thread pinger([&] {
    for (int i = 0; i < 100000 && !stop.load(); ++i) {
      const std::string ping = absl::StrCat("ping", i);
      absl::StatusOr<std::string> reply = active.RoundTrip(ping);
      if (!reply.ok() || *reply != std::string(ping.rbegin(), ping.rend())) {
        ++failures;
        return;
      }
      ++round_trips;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // pacing, not synchronisation
    }
  });
  EXPECT_TRUE(idle.ExpectEof(Deadline()).ok());
  EXPECT_TRUE(stuck.ExpectEof(Deadline()).ok());
  // The active client keeps going for well over two more timeouts.
  const int seen = round_trips.load();
  EXPECT_TRUE(WaitUntil([&] { return round_trips.load() >= seen + 60 || failures.load() > 0; }));
  stop.store(true);
  pinger.join();
  EXPECT_EQ(failures.load(), 0);
  absl::StatusOr<std::string> reply = active.RoundTrip("still open");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "nepo llits");
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kIdleTimeout), 2u);
}

TEST_P(GatewayIntegrationTest, MaxConnections) {
  ReactorOptions reactor;
  reactor.max_connections = 3;
  StartGateway(reactor);
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(clients.back().RoundTrip(absl::StrCat("client", i)).ok());
  }
  // The fourth is accepted and closed at once.
  TestClient extra = Connect();
  EXPECT_TRUE(extra.ExpectEof().ok());
  // Counted right after the close the client has just seen.
  EXPECT_TRUE(WaitUntil([&] { return SumStat(*gw_, [](const ReactorStats& s) { return s.rejected.Get(); }) == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kMaxConnections) == 1; }));
  EXPECT_EQ(gw_->active_connections(), 3);
  // The others are unaffected.
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> reply = clients[i].RoundTrip("abc");
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, "cba");
  }
  // A freed slot can be taken again.
  clients[0].Close();
  ASSERT_TRUE(WaitUntil([&] { return gw_->active_connections() == 2; }));
  TestClient again = Connect();
  absl::StatusOr<std::string> reply = again.RoundTrip("again");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "niaga");
  EXPECT_EQ(SumStat(*gw_, [](const ReactorStats& s) { return s.rejected.Get(); }), 1u);
}

TEST_P(GatewayIntegrationTest, TriggerModeSwitchWhileTrafficFlows) {
  StartGateway();
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
  const TriggerMode other = GetParam() == TriggerMode::kEdge ? TriggerMode::kLevel : TriggerMode::kEdge;
  for (int i = 0; i < 20 && failures.load() == 0; ++i) {
    const int before = batches.load();
    ASSERT_TRUE(gw_->SetTriggerMode(i % 2 == 0 ? other : GetParam()).ok());
    EXPECT_TRUE(WaitUntil([&] { return batches.load() >= before + 2 || failures.load() > 0; }));
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(gw_->trigger_mode(), GetParam());
  EXPECT_EQ(gw_->trigger_mode_switches(), 20u);
  // Switching to the current mode is not a switch.
  ASSERT_TRUE(gw_->SetTriggerMode(GetParam()).ok());
  EXPECT_EQ(gw_->trigger_mode_switches(), 20u);
}

TEST_P(GatewayIntegrationTest, ServesIpv6Loopback) {
  StartGateway({}, "[::1]:0");
  TestClient client = Connect("::1");
  ASSERT_TRUE(client.is_open());
  absl::StatusOr<std::string> reply = client.RoundTrip("v6");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "6v");
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->peer, client.peer_name());
  EXPECT_TRUE(absl::StartsWith(info->peer, "[::1]:")) << info->peer;
}

// A bad header queued behind a backpressured client: every response before
// it still arrives, byte for byte, then EOF.
TEST_P(GatewayIntegrationTest, BadHeaderBehindBackpressure) {
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
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), expected.size());
  EXPECT_TRUE(*got == expected);
  EXPECT_TRUE(write_status.ok()) << write_status;
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kProtocolError) == 1; }));
}

// Gateway::Shutdown in process: what has arrived is answered, then EOF; the
// port is closed; the API says UNAVAILABLE afterwards; a second Shutdown is
// a no-op.
TEST_P(GatewayIntegrationTest, ShutdownAnswersWhatArrivedThenEof) {
  StartGateway();
  TestClient idle = Connect();
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_TRUE(FindConnection(*gw_, idle).ok());
  std::mt19937_64 rng(13);
  std::string requests, expected;
  for (int i = 0; i < 300; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 500);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  requests += "000";  // and the start of a frame that will never be finished
  ASSERT_TRUE(client.WriteAll(requests).ok());
  ASSERT_TRUE(AwaitBytesIn(info->fd, requests.size()));
  const int port = gw_->port();
  std::thread stopper([&] { gw_->Shutdown(absl::Seconds(20)); });
  absl::StatusOr<std::string> got = client.ReadUntilEof();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == expected) << got->size() << " of " << expected.size() << " bytes";
  EXPECT_TRUE(idle.ExpectEof().ok());
  client.Close();
  idle.Close();
  stopper.join();
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kShutdown), 2u);
  absl::StatusOr<TestClient> late = TestClient::Connect(port);
  EXPECT_FALSE(late.ok());
  EXPECT_TRUE(absl::IsUnavailable(gw_->GetConnection(info->fd).status()));
  EXPECT_TRUE(absl::IsUnavailable(gw_->ListConnections(ListQuery{}).status()));
  EXPECT_TRUE(absl::IsUnavailable(gw_->CloseConnection(info->fd, /*id=*/0, /*force=*/false)));
  EXPECT_TRUE(absl::IsUnavailable(gw_->SetTriggerMode(TriggerMode::kLevel)));
  gw_->Shutdown(absl::Seconds(1));  // idempotent
}

// One reactor, one client pipelining large frames as fast as it can (and
// reading its responses), another doing small round trips: the small one is
// served while the fire hose is still running (the per-wakeup read budget).
TEST_P(GatewayIntegrationTest, FireHoseDoesNotStarveOthers) {
  GatewayOptions options;
  options.reactors = 1;
  options.reactor.trigger_mode = GetParam();
  options.reactor.read_budget = 2;
  absl::StatusOr<std::unique_ptr<Gateway>> started = StartTestGateway(options);
  ASSERT_TRUE(started.ok()) << started.status();
  gw_ = *std::move(started);
  TestClient hose = Connect();
  TestClient small = Connect();
  ASSERT_TRUE(small.RoundTrip("warm").ok());

  constexpr int kMaxHoseFrames = 400;
  std::mt19937_64 rng(14);
  const std::string payload = RandomBytes(rng, kMaxPayload);
  const std::string frame = Frame(payload);
  const std::string reversed = std::string(payload.rbegin(), payload.rend());
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
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<std::string> reply = small.RoundTrip(absl::StrCat("small", i));
    ASSERT_TRUE(reply.ok()) << reply.status();
    ++small_done;
  }
  const bool hose_running_at_end = written.load() < kMaxHoseFrames;
  stop.store(true);
  writer.join();
  reader.join();
  EXPECT_EQ(hose_errors.load(), 0);
  EXPECT_EQ(read.load(), written.load());
  EXPECT_EQ(small_done, 20);
  // Informational: whether the small client finished before the hose did.
  RecordProperty("hose_still_running", hose_running_at_end ? 1 : 0);
}

// A client that half-closes while the server holds output for it, and then
// takes its time to read, must not make the reactor spin (level mode once
// did: EPOLLRDHUP stayed registered on a connection that no longer reads, so
// every epoll_wait returned at once until the output drained). Counted as
// reactor wakeups while the client does nothing for a moment: an idle
// reactor wakes a handful of times, a spinning one hundreds of thousands.
TEST_P(GatewayIntegrationTest, NoBusyLoopWhileAHalfClosedClientIsSlowToRead) {
  StartGateway();
  TestClient client = Connect();
  absl::StatusOr<ConnectionInfo> info = FindConnection(*gw_, client);
  ASSERT_TRUE(info.ok()) << info.status();
  // Large frames, never read, one at a time until the server pauses.
  std::mt19937_64 rng(11);
  std::string expected;
  const size_t high_water = gw_->options().reactor.high_water;
  bool paused = false;
  for (int i = 0; i < 400 && !paused; ++i) {
    const std::string payload = RandomBytes(rng, kMaxPayload);
    ASSERT_TRUE(client.WriteAll(Frame(payload), Deadline(kBigStep)).ok()) << "frame " << i;
    expected += ReversedFrame(payload);
    paused = WaitUntil(
        [&] {
          absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info->fd);
          return now.ok() && now->need_write >= high_water;
        },
        absl::Now() + absl::Milliseconds(2));
  }
  ASSERT_TRUE(paused) << "the server never paused";
  ASSERT_TRUE(client.ShutdownWrite().ok());
  // Every byte and the FIN have reached the server's kernel.
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<int> unacked = client.UnackedBytes();
    return unacked.ok() && *unacked == 0;
  }));
  const uint64_t before = SumStat(*gw_, [](const ReactorStats& s) { return s.wakeups.Get(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // a measurement window, not synchronisation
  const uint64_t during = SumStat(*gw_, [](const ReactorStats& s) { return s.wakeups.Get(); }) - before;
  EXPECT_LT(during, 1000u) << "the reactors spun while the client was not reading";
  // And then every response arrives, then EOF.
  absl::StatusOr<std::string> got = client.ReadUntilEof(Deadline(kBigStep));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), expected.size());
  EXPECT_TRUE(*got == expected);
}

// Random streams through the real connection code: frames of random sizes,
// CR/LF between them, written in random pieces, sometimes ending in a bad
// header. The reply is exactly what the reference decoder predicts.
TEST_P(GatewayIntegrationTest, RandomStreamsMatchTheReferenceDecoder) {
  StartGateway();
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    std::mt19937_64 rng(seed);
    std::string stream;
    const int frames = 1 + static_cast<int>(rng() % 40);
    for (int f = 0; f < frames; ++f) {
      if (rng() % 4 == 0) stream += std::string(rng() % 3, '\n') + std::string(rng() % 2, '\r');
      const size_t size = rng() % 10 == 0 ? 1 + rng() % kMaxPayload : 1 + rng() % 300;
      stream += Frame(RandomBytes(rng, size));
    }
    if (rng() % 3 == 0) {
      std::string bad = "00000";
      if (rng() % 2 == 0) bad[rng() % 5] = static_cast<char>("x-+ \r\xff"[rng() % 6]);
      stream += bad + Frame("after the error");
    } else if (rng() % 2 == 0) {
      stream += Frame("incomplete").substr(0, 1 + rng() % 10);
    }
    const ::gateway::testing::DecodeResult model = ::gateway::testing::ReferenceDecode(stream);
    std::string expected;
    for (const std::string& payload : model.payloads) expected += ReversedFrame(payload);

    TestClient client = Connect();
    std::thread writer([&] {
      size_t pos = 0;
      while (pos < stream.size()) {
        const size_t piece = std::min<size_t>(stream.size() - pos, 1 + rng() % 3000);
        if (!client.WriteInPieces(stream.substr(pos, piece), piece, Deadline(kBigStep)).ok()) return;  // closed early
        pos += piece;
      }
      (void)client.ShutdownWrite();
    });
    absl::StatusOr<std::string> got = client.ReadUntilEof(Deadline(kBigStep));
    writer.join();
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(*got == expected) << got->size() << " bytes, expected " << expected.size()
                                  << (model.error ? " (stream has a bad header)" : "");
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, GatewayIntegrationTest,
                         ::testing::Values(TriggerMode::kEdge, TriggerMode::kLevel),
                         [](const ::testing::TestParamInfo<TriggerMode>& info) {
                           return std::string(TriggerModeName(info.param));
                         });

}  // namespace
}  // namespace gateway
