// Round trips and framing: frames of every size and byte value, pipelined,
// dribbled a byte at a time or split anywhere, over IPv4 and IPv6, from many
// connections at once, and random streams against the reference decoder.
// Responses are checked byte for byte; counters exactly where deterministic.
#include <algorithm>
#include <atomic>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/decoder_harness.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class RoundTripTest : public GatewayIntegrationTest {};

TEST_P(RoundTripTest, OneFrameIsReversedCountedOnceAndClosedAfterFin) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll("00003abc"));
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.ReadExactly(8));
  EXPECT_EQ(reply, "00003cba");
  ASSERT_OK(client.ShutdownWrite());
  EXPECT_OK(client.ExpectEof());
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kPeerClosed) == 1; }));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_in), 1u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_out), 1u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::bytes_in), 8u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::bytes_out), 8u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::accepted), 1u);
  EXPECT_EQ(gw_->active_connections(), 0);
}

TEST_P(RoundTripTest, ThousandSequentialFrames) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 300);
    SCOPED_TRACE(absl::StrCat("frame ", i));
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip(payload));
    ASSERT_EQ(reply, Reversed(payload));
  }
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  EXPECT_EQ(info.frames_in, 1000u);
  EXPECT_EQ(info.frames_out, 1000u);
  EXPECT_EQ(info.bytes_in, info.bytes_out);
}

TEST_P(RoundTripTest, ThousandPipelinedFramesInOneWrite) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(2);
  std::string requests, expected;
  for (int i = 0; i < 1000; ++i) {
    const std::string payload = absl::StrCat(i, ":", RandomBytes(rng, rng() % 50));
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_OK(client.WriteAll(requests));
  ASSERT_OK_AND_ASSIGN(const std::string replies, client.ReadExactly(expected.size()));
  EXPECT_TRUE(replies == expected);
  ASSERT_OK(client.ShutdownWrite());
  EXPECT_OK(client.ExpectEof());
}

TEST_P(RoundTripTest, FrameDribbledOneByteAtATime) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  // Each byte is read by the server on its own before the next is sent.
  const std::string payload = "dribble\r\n\0\xff" + std::string("0123456789");
  const std::string stream = "\r\n" + Frame(payload);
  for (size_t i = 0; i < stream.size(); ++i) {
    ASSERT_OK(client.WriteAll(stream.substr(i, 1)));
    ASSERT_TRUE(AwaitBytesIn(info.fd, i + 1)) << "byte " << i;
  }
  ASSERT_OK_AND_ASSIGN(std::string reply, client.ReadFrame());
  EXPECT_EQ(reply, Reversed(payload));
  // A larger frame, one byte per send, without waiting in between.
  std::mt19937_64 rng(3);
  const std::string big = RandomBytes(rng, 2000);
  ASSERT_OK(client.WriteInPieces(Frame(big), 1));
  ASSERT_OK_AND_ASSIGN(reply, client.ReadFrame());
  EXPECT_TRUE(reply == Reversed(big));
}

TEST_P(RoundTripTest, HeaderSplitAcrossWrites) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  uint64_t sent = 0;
  for (size_t split = 1; split < kHeaderSize; ++split) {
    const std::string payload = absl::StrCat("split-at-", split);
    const std::string frame = Frame(payload);
    ASSERT_OK(client.WriteAll(frame.substr(0, split)));
    ASSERT_TRUE(AwaitBytesIn(info.fd, sent + split));
    ASSERT_OK(client.WriteAll(frame.substr(split)));
    sent += frame.size();
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.ReadFrame());
    EXPECT_EQ(reply, Reversed(payload));
  }
}

TEST_P(RoundTripTest, OneAndAHalfFramesThenTheRest) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(4);
  for (size_t size : {100u, 5000u, 99999u}) {
    const std::string a = RandomBytes(rng, size);
    const std::string b = RandomBytes(rng, size);
    const std::string frames = Frame(a) + Frame(b);
    const size_t first_part = Frame(a).size() + Frame(b).size() / 2;
    ASSERT_OK(client.WriteAll(frames.substr(0, first_part)));
    // The first response arrives while the second frame is still incomplete.
    ASSERT_OK_AND_ASSIGN(std::string reply, client.ReadFrame());
    EXPECT_TRUE(reply == Reversed(a)) << size;
    ASSERT_OK(client.WriteAll(frames.substr(first_part)));
    ASSERT_OK_AND_ASSIGN(reply, client.ReadFrame());
    EXPECT_TRUE(reply == Reversed(b)) << size;
  }
}

TEST_P(RoundTripTest, LargestPayloadsPipelined) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(5);
  std::string requests, expected;
  for (int i = 0; i < 8; ++i) {
    const std::string payload = RandomBytes(rng, kMaxPayload);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_OK(client.WriteAll(requests.substr(0, kMaxFrameSize)));  // one alone first
  ASSERT_OK_AND_ASSIGN(const std::string one, client.ReadExactly(kMaxFrameSize));
  EXPECT_TRUE(one == expected.substr(0, kMaxFrameSize));
  std::thread writer([&] { EXPECT_OK(client.WriteAll(requests.substr(kMaxFrameSize), Deadline(kBigStep))); });
  absl::StatusOr<std::string> rest = client.ReadExactly(expected.size() - kMaxFrameSize, Deadline(kBigStep));
  writer.join();
  ASSERT_OK(rest);
  EXPECT_TRUE(*rest == expected.substr(kMaxFrameSize));
}

TEST_P(RoundTripTest, AllByteValuesInAPayload) {
  StartGateway();
  TestClient client = Connect();
  std::string every;
  for (int i = 0; i < 256; ++i) every.push_back(static_cast<char>(i));
  const std::string reversed_order = Reversed(every);
  const std::string twice = every + reversed_order + "00005" + every;  // digits and headers inside a payload too
  for (const std::string& payload : {every, reversed_order, twice}) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip(payload));
    EXPECT_TRUE(reply == Reversed(payload));
  }
  // Every single byte value as a one-byte frame, pipelined.
  std::string requests, expected;
  for (int i = 0; i < 256; ++i) {
    requests += Frame(std::string(1, static_cast<char>(i)));
    expected += ReversedFrame(std::string(1, static_cast<char>(i)));
  }
  ASSERT_OK(client.WriteAll(requests));
  ASSERT_OK_AND_ASSIGN(const std::string replies, client.ReadExactly(expected.size()));
  EXPECT_TRUE(replies == expected);
}

TEST_P(RoundTripTest, ServesIpv6Loopback) {
  StartGateway(ReactorOptions{}, "[::1]:0");
  TestClient client = Connect("::1");
  ASSERT_TRUE(client.is_open());
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip("v6"));
  EXPECT_EQ(reply, "6v");
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  EXPECT_EQ(info.peer, client.peer_name());
  EXPECT_TRUE(absl::StartsWith(info.peer, "[::1]:")) << info.peer;
}

TEST_P(RoundTripTest, ManyConcurrentConnections) {
  RaiseFdLimit();
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
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::accepted), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_out), static_cast<uint64_t>(kThreads * kPerThread * kFramesEach));
  // SO_REUSEPORT spread them: both reactors served some.
  EXPECT_GT(gw_->reactor_stats(0).accepted.Get(), 0u);
  EXPECT_GT(gw_->reactor_stats(1).accepted.Get(), 0u);
}

// Random streams through the real connection code: frames of random sizes,
// CR/LF between them, written in random pieces, sometimes ending in a bad
// header. The reply is exactly what the reference decoder predicts.
TEST_P(RoundTripTest, RandomStreamsMatchTheReferenceDecoder) {
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
    const DecodeResult model = ReferenceDecode(stream);
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
    ASSERT_OK(got);
    ASSERT_TRUE(*got == expected) << got->size() << " bytes, expected " << expected.size()
                                  << (model.error ? " (stream has a bad header)" : "");
  }
}

INSTANTIATE_ON_ALL_BACKENDS(RoundTripTest);

}  // namespace
}  // namespace gateway::testing
