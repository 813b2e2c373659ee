// The data-plane protocol through a gateway in upstream mode in front of
// in-process backends: pipelining, fragmentation, the largest frame,
// backpressure, half-close, a protocol error, order across two backends,
// weights, and what a client gets when no backend can be reached. Exact
// bytes, and the backends' books once quiet.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"
#include "tests/upstream/garbage_backend.h"
#include "tests/upstream/upstream_counters.h"
#include "tests/upstream/upstream_fixture.h"

namespace gateway::testing {
namespace {

class UpstreamProtocolTest : public UpstreamTest {};

// `n` frames of random bytes (all 256 values) of 1..max_size bytes: the
// requests and the responses the backends' reverse handler gives.
struct Batch {
  std::string requests, expected;
  std::vector<std::string> payloads;
};
Batch MakeBatch(uint64_t seed, int n, size_t max_size) {
  std::mt19937_64 rng(seed);
  Batch batch;
  for (int i = 0; i < n; ++i) {
    batch.payloads.push_back(RandomBytes(rng, 1 + rng() % max_size));
    batch.requests += Frame(batch.payloads.back());
    batch.expected += ReversedFrame(batch.payloads.back());
  }
  return batch;
}

// Says which payload `reply` answers, if any (a reordered response), for
// failure messages.
std::string WhichPayload(const std::vector<std::string>& payloads, const std::string& reply) {
  for (size_t j = 0; j < payloads.size(); ++j) {
    if (reply == Reversed(payloads[j])) return absl::StrCat("the response to frame ", j);
  }
  return reply.empty() ? "the empty frame" : "no frame's response";
}

// The gateway's picture of connection `fd`, for failure messages.
std::string Describe(Gateway& gw, int fd) {
  absl::StatusOr<ConnectionInfo> c = gw.GetConnection(fd);
  if (!c.ok()) return std::string(c.status().message());
  return absl::StrCat("state ", ConnectionStateName(c->state), ", bytes_in ", c->bytes_in, ", frames_in ", c->frames_in,
                      ", frames_out ", c->frames_out, ", need_write ", c->need_write, ", upstream_inflight ",
                      c->upstream_inflight);
}

// Once quiet, the books say: `n` requests written, `n` answered, no error.
void ExpectBooks(const Gateway& gw, uint64_t n) {
  EXPECT_TRUE(WaitUntil([&] { return Totals(gw).answered() >= n; })) << DescribeBackends(gw);
  const UpstreamTotals t = Totals(gw);
  EXPECT_EQ(t.requests, n) << DescribeBackends(gw);
  EXPECT_EQ(t.responses, n) << DescribeBackends(gw);
  EXPECT_EQ(t.backend_errors, 0u) << DescribeBackends(gw);
  EXPECT_EQ(t.unrouted_errors, 0u);
  EXPECT_EQ(t.redispatched, 0u);
}

TEST_P(UpstreamProtocolTest, ManyFramesInOneWriteComeBackInOrder) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  const Batch batch = MakeBatch(1, 300, 2000);
  ASSERT_OK(client.WriteAll(batch.requests));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadExactly(batch.expected.size()));
  EXPECT_TRUE(got == batch.expected) << "responses differ";
  ExpectBooks(*gw_, 300);
}

TEST_P(UpstreamProtocolTest, FrameSplitByteByByte) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  const Batch batch = MakeBatch(2, 3, 300);
  ASSERT_OK(client.WriteInPieces(batch.requests, 1));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadExactly(batch.expected.size()));
  EXPECT_TRUE(got == batch.expected) << "responses differ";
  ExpectBooks(*gw_, 3);
}

TEST_P(UpstreamProtocolTest, LargestFrameBothWays) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  std::mt19937_64 rng(3);
  const std::string a = RandomBytes(rng, kMaxPayload);
  const std::string b = RandomBytes(rng, kMaxPayload);
  ASSERT_OK(client.WriteAll(Frame(a) + Frame(b) + Frame("tail")));
  ASSERT_OK_AND_ASSIGN(const std::string got,
                       client.ReadExactly(2 * kMaxFrameSize + kHeaderSize + 4, Deadline(kBigStep)));
  EXPECT_TRUE(got == ReversedFrame(a) + ReversedFrame(b) + ReversedFrame("tail")) << "responses differ";
  ExpectBooks(*gw_, 3);
}

// README, upstream mode: "a client with 1,024 requests unanswered stops
// being read until answers come", and (as without --upstream) a client whose
// queued output passed the high-water mark is not read.
constexpr uint64_t kClientOutstandingCap = 1024;

// For AwaitConnection: the gateway has stopped reading a client that does
// not read, because of the output queued for it. Reading pauses when that
// output reaches the high-water mark and resumes only once it is below the
// low-water mark, while the kernel may take part of it meanwhile: so the
// output is at the high-water mark, or above the low-water mark with nothing
// more read over several looks in a row.
class StoppedForOutput {
 public:
  explicit StoppedForOutput(const ReactorOptions& options)
      : high_water_(options.high_water), low_water_(options.low_water) {}

  bool operator()(const ConnectionInfo& now) {
    unchanged_looks_ = now.bytes_in == last_bytes_in_ ? unchanged_looks_ + 1 : 0;
    last_bytes_in_ = now.bytes_in;
    return now.need_write >= high_water_ || (now.need_write > low_water_ && unchanged_looks_ >= kLooks);
  }

 private:
  static constexpr int kLooks = 10;
  uint64_t high_water_;
  uint64_t low_water_;
  uint64_t last_bytes_in_ = 0;
  int unchanged_looks_ = 0;
};

// A client that sends 60 MB of 10 kB frames without reading: the gateway
// stops reading it well before the end, its output for that client stays
// within high_water plus the capped requests' responses, the memory it holds
// stays far below what was sent, and once the client reads, every response
// arrives exact and in order.
TEST_P(UpstreamProtocolTest, ClientThatDoesNotReadIsBackpressured) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  constexpr int kFrames = 6000;
  constexpr size_t kPayload = 10000;
  std::mt19937_64 rng(4);
  std::vector<std::string> payloads;
  std::string requests;
  requests.reserve(kFrames * (kHeaderSize + kPayload));
  for (int i = 0; i < kFrames; ++i) {
    payloads.push_back(RandomBytes(rng, kPayload));
    requests += Frame(payloads.back());
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> max_queued{0};  // bytes held by the gateway under test's connections
  std::thread monitor([&] {
    while (!stop.load()) {
      const int64_t now = static_cast<int64_t>(SumStat(*gw_, [](const ReactorStats& s) {
        return static_cast<uint64_t>(std::max<int64_t>(s.queued_bytes.Get(), 0));
      }));
      if (now > max_queued.load()) max_queued.store(now);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  absl::Status write_status;
  std::thread writer([&] { write_status = client.WriteAll(requests, Deadline(kBigStep)); });

  // Paused: every request read has been answered into the client's output,
  // which holds reading back, so nothing more is read.
  const size_t high_water = gw_->options().reactor.high_water;
  ConnectionInfo paused;
  // io_uring keeps up to 256 kB of sends in its own queue, which need_write
  // does not show: there, paused is everything answered and reading stopped.
  const bool uring = GetParam().model == IoModel::kIoUring;
  StoppedForOutput stopped(gw_->options().reactor);
  EXPECT_TRUE(AwaitConnection(
      info.fd,
      [&](const ConnectionInfo& now) {
        if (now.upstream_inflight != 0) return false;
        if (uring) return now.bytes_in >= high_water && now.state != ConnectionState::kProcess;
        return stopped(now);
      },
      Deadline(kBigStep), &paused))
      << "need_write " << paused.need_write << ", upstream_inflight " << paused.upstream_inflight;
  EXPECT_LT(paused.bytes_in, requests.size() / 2) << "the gateway read most of it without pausing";
  EXPECT_LE(paused.need_write, high_water + kClientOutstandingCap * (kHeaderSize + kPayload));

  bool stopped_early = true;
  for (int i = 0; i < kFrames; ++i) {
    absl::StatusOr<std::string> reply = client.ReadFrame(Deadline(kBigStep));
    if (!reply.ok()) {
      ADD_FAILURE() << "frame " << i << ": " << reply.status() << "; the gateway's side: " << Describe(*gw_, info.fd)
                    << "\n"
                    << DescribeBackends(*gw_);
      break;
    }
    if (*reply != Reversed(payloads[i])) {
      ADD_FAILURE() << "frame " << i << ": " << reply->size() << " bytes, " << WhichPayload(payloads, *reply) << "\n"
                    << DescribeBackends(*gw_);
      break;
    }
    stopped_early = i + 1 < kFrames;
  }
  if (stopped_early) (void)client.ShutdownWrite();  // the writer stops at once
  writer.join();
  stop.store(true);
  monitor.join();
  EXPECT_OK(write_status);
  EXPECT_LT(max_queued.load(), static_cast<int64_t>(requests.size() / 2))
      << "the gateway held a large part of what was sent";
  ExpectBooks(*gw_, kFrames);
}

// A limit in bytes too: requests in flight and answers held count toward
// --high_water_bytes, so with frames of the largest size a client that does
// not read stops being read after a few of them (without the byte limit,
// 1,024 unanswered requests of 100 kB let the gateway hold tens of MB).
TEST_P(UpstreamProtocolTest, ClientThatDoesNotReadHoldsLittleEvenWithLargestFrames) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  constexpr int kFrames = 400;
  std::mt19937_64 rng(4);
  std::string requests, expected;
  for (int i = 0; i < kFrames; ++i) {
    const std::string payload = RandomBytes(rng, kMaxPayload);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  absl::Status write_status;
  std::thread writer([&] { write_status = client.WriteAll(requests, Deadline(kBigStep)); });
  ConnectionInfo paused;
  // io_uring keeps up to 256 kB of sends in its own queue, which need_write
  // does not show: there, paused is everything answered and reading stopped.
  const bool uring = GetParam().model == IoModel::kIoUring;
  StoppedForOutput stopped(gw_->options().reactor);
  EXPECT_TRUE(AwaitConnection(
      info.fd,
      [&](const ConnectionInfo& now) {
        if (now.upstream_inflight != 0) return false;
        if (uring) return now.bytes_in >= 2 * kMaxPayload && now.state != ConnectionState::kProcess;
        return stopped(now);
      },
      Deadline(kBigStep), &paused))
      << "the gateway's side: " << Describe(*gw_, info.fd) << "\n"
      << DescribeBackends(*gw_);
  EXPECT_LT(paused.bytes_in, requests.size() / 4);
  absl::StatusOr<std::string> got = client.ReadExactly(expected.size(), Deadline(kBigStep));
  client.Close();
  writer.join();
  ASSERT_OK(got);
  EXPECT_TRUE(*got == expected);
}

TEST_P(UpstreamProtocolTest, HalfCloseGetsEveryResponseThenEof) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  const Batch batch = MakeBatch(5, 100, 5000);
  ASSERT_OK(client.WriteAll(batch.requests));
  ASSERT_OK(client.ShutdownWrite());
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof());
  EXPECT_EQ(got.size(), batch.expected.size());
  EXPECT_TRUE(got == batch.expected) << "responses differ";
  ExpectBooks(*gw_, 100);
}

// A bad header after good frames: their responses, then EOF; nothing after
// the bad header reaches a backend.
TEST_P(UpstreamProtocolTest, BadHeaderDeliversEarlierResponsesThenCloses) {
  StartBackends(1);
  StartFront(AllBackends());
  TestClient client = Connect();
  const Batch batch = MakeBatch(6, 50, 3000);
  ASSERT_OK(client.WriteAll(batch.requests + "12x45" + Frame("never forwarded")));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof());
  EXPECT_EQ(got.size(), batch.expected.size());
  EXPECT_TRUE(got == batch.expected) << "responses differ";
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kProtocolError) == 1; }));
  ExpectBooks(*gw_, 50);
}

// Eight clients pipelining at once over two backends in round robin: each
// gets exactly its own responses in its own order, and the two backends
// share the work evenly (smooth round robin alternates on each reactor).
TEST_P(UpstreamProtocolTest, EachClientKeepsItsOrderAcrossTwoBackends) {
  StartBackends(2);
  StartFront(AllBackends());
  constexpr int kClients = 8;
  constexpr int kFrames = 300;
  std::vector<TestClient> clients;
  std::vector<Batch> batches;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(Connect());
    batches.push_back(MakeBatch(100 + c, kFrames, 3000));
  }
  std::vector<std::thread> threads;
  std::vector<std::string> got(kClients);
  std::vector<absl::Status> status(kClients);
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      std::thread writer([&] { status[c] = clients[c].WriteAll(batches[c].requests); });
      absl::StatusOr<std::string> read = clients[c].ReadExactly(batches[c].expected.size());
      writer.join();
      if (!read.ok()) status[c] = read.status();
      if (read.ok()) got[c] = *std::move(read);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int c = 0; c < kClients; ++c) {
    EXPECT_OK(status[c]) << "client " << c;
    EXPECT_TRUE(got[c] == batches[c].expected) << "client " << c << ": responses differ";
  }
  ExpectBooks(*gw_, kClients * kFrames);
  ASSERT_OK_AND_ASSIGN(const std::vector<BackendInfo> backends, gw_->ListBackends());
  ASSERT_EQ(backends.size(), 2u);
  const int64_t diff = static_cast<int64_t>(backends[0].requests) - static_cast<int64_t>(backends[1].requests);
  EXPECT_LE(std::abs(diff), gw_->num_reactors()) << DescribeBackends(*gw_);
}

// Weights 3 and 1: three requests in four go to the first.
TEST_P(UpstreamProtocolTest, WeightsSplitRequests) {
  StartBackends(2);
  UpstreamOptions upstream = AllBackends();
  upstream.backends[0].weight = 3;
  StartFront(upstream);
  TestClient client = Connect();
  const Batch batch = MakeBatch(7, 400, 100);
  ASSERT_OK(client.WriteAll(batch.requests));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadExactly(batch.expected.size()));
  EXPECT_TRUE(got == batch.expected);
  ExpectBooks(*gw_, 400);
  ASSERT_OK_AND_ASSIGN(const BackendInfo heavy, gw_->GetBackend(BackendAddress(0)));
  EXPECT_EQ(heavy.weight, 3u);
  EXPECT_NEAR(static_cast<double>(heavy.requests), 300.0, 3.0) << DescribeBackends(*gw_);
}

// A backend that writes its responses one byte at a time: the gateway
// forwards each only once whole, so the client sees exactly the responses.
TEST_P(UpstreamProtocolTest, ResponsesWrittenByteByByteArriveWhole) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GarbageBackend> slow, GarbageBackend::Start(Garbage::kDribble));
  UpstreamOptions upstream;
  upstream.backends.push_back({slow->address()});
  upstream.probe_interval = absl::ZeroDuration();
  StartFront(upstream);
  TestClient client = Connect();
  const Batch batch = MakeBatch(9, 20, 200);
  ASSERT_OK(client.WriteAll(batch.requests));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadExactly(batch.expected.size()));
  EXPECT_TRUE(got == batch.expected) << "responses differ";
  ExpectBooks(*gw_, 20);
}

// The only backend refuses connections: every frame gets the empty frame
// (not a hang), and the client stays open for the next one.
TEST_P(UpstreamProtocolTest, NoReachableBackendAnswersEmptyFramesAndStaysOpen) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket refused, BindLoopback());
  UpstreamOptions upstream;
  upstream.backends.push_back({absl::StrCat("127.0.0.1:", refused.port())});
  upstream.probe_interval = absl::ZeroDuration();
  StartFront(upstream);
  TestClient client = Connect();
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip(absl::StrCat("lost", i)));
    EXPECT_EQ(reply, "") << "frame " << i;
  }
  ASSERT_OK(client.WriteAll(Frame("a") + Frame("b") + Frame("c")));
  ASSERT_OK_AND_ASSIGN(const std::string three, client.ReadExactly(15));
  EXPECT_EQ(three, "000000000000000");
  const UpstreamTotals t = Totals(*gw_);
  EXPECT_EQ(t.responses, 0u);
  EXPECT_EQ(t.requests, 0u);
  EXPECT_EQ(t.error_responses(), 13u) << DescribeBackends(*gw_);
}

// Next to a good backend, one that refuses connections costs no error: a
// frame not yet written is re-dispatched.
TEST_P(UpstreamProtocolTest, UnreachableBackendNextToAGoodOneCostsNoError) {
  StartBackends(1);
  ASSERT_OK_AND_ASSIGN(LoopbackSocket refused, BindLoopback());
  UpstreamOptions upstream = AllBackends();
  upstream.backends.push_back({absl::StrCat("127.0.0.1:", refused.port())});
  StartFront(upstream);
  TestClient client = Connect();
  const Batch batch = MakeBatch(8, 200, 500);
  ASSERT_OK(client.WriteAll(batch.requests));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadExactly(batch.expected.size()));
  EXPECT_TRUE(got == batch.expected) << "responses differ";
  EXPECT_TRUE(WaitUntil([&] { return Totals(*gw_).answered() >= 200; }));
  const UpstreamTotals t = Totals(*gw_);
  EXPECT_EQ(t.responses, 200u);
  EXPECT_EQ(t.error_responses(), 0u) << DescribeBackends(*gw_);
  ASSERT_OK_AND_ASSIGN(const BackendInfo good, gw_->GetBackend(BackendAddress(0)));
  EXPECT_EQ(good.responses, 200u);
}

INSTANTIATE_ON_REACTOR_BACKENDS(UpstreamProtocolTest);

}  // namespace
}  // namespace gateway::testing
