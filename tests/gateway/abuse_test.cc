// The data plane against hostile or careless clients, in process: a frame
// trickled byte by byte, clients that never read while pipelining large
// frames (per-connection and global memory bounds), and a close aimed at a
// connection whose fd now belongs to someone else. Every test in both
// trigger modes; responses checked byte for byte.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

constexpr size_t kMaxFrameBytes = kMaxFrameSize;  // 100,004

class AbuseTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { GATEWAY_SKIP_IF_UNAVAILABLE(GetParam()); }

  void StartGateway(ReactorOptions reactor, int reactors = 2) {
    GatewayOptions options;
    options.reactors = reactors;
    GetParam().ApplyTo(&reactor);
    options.reactor = reactor;
    absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(options);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
  }

  void TearDown() override {
    if (gw_) gw_->Shutdown(absl::Seconds(5));
  }

  TestClient Connect() {
    absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : TestClient();
  }

  int64_t QueuedBytes() const {
    int64_t total = 0;
    for (int i = 0; i < gw_->num_reactors(); ++i) total += gw_->reactor_stats(i).queued_bytes.Get();
    return total;
  }

  std::unique_ptr<Gateway> gw_;
};

INSTANTIATE_TEST_SUITE_P(Backends, AbuseTest, ::testing::ValuesIn(ReactorBackends()), BackendName());

// A slowloris client: every byte arrives well within the idle timeout, so
// only the frame deadline can end it. The response to the frame before it
// is still delivered, then EOF.
TEST_P(AbuseTest, FrameTimeoutClosesATricklingClient) {
  ReactorOptions options;
  options.idle_timeout = absl::Minutes(5);
  options.frame_timeout = absl::Seconds(1);
  StartGateway(options);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll("00003abc"));
  ASSERT_OK_AND_ASSIGN(const std::string first, client.ReadExactly(8));
  EXPECT_EQ(first, "00003cba");

  const std::string trickled = Frame(std::string(100, 'x'));
  bool closed = false;
  for (size_t i = 0; i < trickled.size() && !closed; ++i) {
    // A write after the gateway's FIN may still succeed; after its close it
    // fails with EPIPE/ECONNRESET. Either way, stop once it is closed.
    if (!client.WriteAll(trickled.substr(i, 1)).ok()) break;
    absl::SleepFor(absl::Milliseconds(100));
    closed = ClosedCount(*gw_, CloseReason::kFrameTimeout) == 1;
  }
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kFrameTimeout) == 1; }));
  absl::StatusOr<std::string> rest = client.ReadUntilEof();
  if (rest.ok()) {
    EXPECT_EQ(*rest, "");  // nothing after the first response; a reset is fine too
  }
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kIdleTimeout), 0u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_in), 1u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_out), 1u);
}

// The deadline is per frame: frames that each take a while but finish in
// time keep the connection, however long the connection lives.
TEST_P(AbuseTest, FrameTimeoutIsPerFrameNotPerConnection) {
  ReactorOptions options;
  options.frame_timeout = absl::Seconds(3);
  StartGateway(options);
  TestClient client = Connect();
  for (int i = 0; i < 4; ++i) {
    const std::string payload = absl::StrCat("frame-", i);
    const std::string frame = Frame(payload);
    // Half now, half after a pause: each frame takes ~0.6 s, the four 2.4 s+.
    ASSERT_OK(client.WriteAll(frame.substr(0, 4)));
    absl::SleepFor(absl::Milliseconds(600));
    ASSERT_OK(client.WriteAll(frame.substr(4)));
    absl::StatusOr<std::string> reply = client.ReadExactly(frame.size());
    ASSERT_TRUE(reply.ok()) << "frame " << i << ": " << reply.status();
    EXPECT_EQ(*reply, ReversedFrame(payload));
  }
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kFrameTimeout), 0u);
  ASSERT_OK(client.ShutdownWrite());
  EXPECT_OK(client.ExpectEof());
}

// Sends `frames` pipelined frames of `payload_size` random bytes from a
// background thread; `expected` gets the responses they must produce. The
// writer gives up (quietly) at its deadline if the gateway stops reading.
struct PipelinedSender {
  PipelinedSender(TestClient* client, int frames, size_t payload_size, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string requests;
    for (int i = 0; i < frames; ++i) {
      const std::string payload = RandomBytes(rng, payload_size);
      requests += Frame(payload);
      expected += ReversedFrame(payload);
    }
    thread = std::thread([client, requests = std::move(requests), this] {
      write_status = client->WriteAll(requests, Deadline(absl::Seconds(90)));
    });
  }
  ~PipelinedSender() {
    if (thread.joinable()) thread.join();
  }
  std::string expected;
  absl::Status write_status;
  std::thread thread;
};

// A client that pipelines large frames and never reads: the gateway stops
// reading from it once its output reaches the high-water mark, and the
// output it queues never exceeds that mark by more than one frame, however
// much a single read brings in. Once the client reads, every response arrives.
TEST_P(AbuseTest, QueuedOutputStaysUnderHighWaterPlusOneFrame) {
  ReactorOptions options;
  options.high_water = 16 * 1024;
  options.low_water = 4 * 1024;
  StartGateway(options);
  TestClient client = Connect();
  ASSERT_OK(client.SetReceiveBuffer(64 * 1024));
  // More than the kernel's socket buffers on both sides can hold.
  PipelinedSender sender(&client, 120, kMaxPayload, 7);
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));

  // Wait until the gateway has paused: output queued, nothing read for a while.
  uint64_t max_queued = 0;
  uint64_t last_bytes_in = 0;
  int stable_polls = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info.fd, info.id);
        if (!now.ok()) return false;
        max_queued = std::max(max_queued, now->need_write);
        stable_polls = now->bytes_in == last_bytes_in && now->need_write > 0 ? stable_polls + 1 : 0;
        last_bytes_in = now->bytes_in;
        absl::SleepFor(absl::Milliseconds(20));
        return stable_polls >= 25;
      },
      Deadline(absl::Seconds(60))))
      << "the gateway never stopped reading";
  EXPECT_GT(max_queued, options.high_water / 2);
  EXPECT_LE(max_queued, options.high_water + kMaxFrameBytes);
  EXPECT_EQ(gw_->active_connections(), 1);

  ASSERT_OK_AND_ASSIGN(const std::string replies,
                       client.ReadExactly(sender.expected.size(), Deadline(absl::Seconds(90))));
  EXPECT_TRUE(replies == sender.expected) << "responses differ";
  sender.thread.join();
  EXPECT_TRUE(sender.write_status.ok()) << sender.write_status;
}

// Many clients that pipeline large frames and never read: above the global
// budget no connection reads, so the bytes held in buffers stay within the
// budget plus what one read per reactor can add. When they read, every
// response arrives and the buffers are given back.
TEST_P(AbuseTest, GlobalBudgetBoundsBufferedBytes) {
  constexpr int kClients = 24;
  constexpr int64_t kBudget = 4 << 20;
  ReactorOptions options;
  options.max_queued_bytes = kBudget;
  StartGateway(options);
  EXPECT_EQ(QueuedBytes(), 0);  // a reactor's own read block is not counted
  std::vector<TestClient> clients;
  std::vector<std::unique_ptr<PipelinedSender>> senders;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Connect());
    ASSERT_OK(clients.back().SetReceiveBuffer(64 * 1024));
  }
  for (int i = 0; i < kClients; ++i) {
    senders.push_back(std::make_unique<PipelinedSender>(&clients[i], 60, kMaxPayload, 100 + i));
  }
  // Until the gateway stops taking bytes from anyone.
  int64_t max_queued = 0;
  uint64_t last_in = 0;
  int stable_polls = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        max_queued = std::max(max_queued, QueuedBytes());
        const uint64_t in = SumStat(*gw_, &ReactorStats::bytes_in);
        stable_polls = in == last_in ? stable_polls + 1 : 0;
        last_in = in;
        absl::SleepFor(absl::Milliseconds(20));
        return stable_polls >= 25;
      },
      Deadline(absl::Seconds(60))));
  // Without the budget these clients would hold ~24 x 400 KiB.
  EXPECT_GT(max_queued, kBudget / 2);
  // After the read that crosses it, each reactor may finish that one read:
  // up to high_water of new output plus a partial frame and its read block,
  // each rounded up to a power-of-two block.
  const int64_t slack = gw_->num_reactors() * int64_t{1 << 20};
  EXPECT_LE(max_queued, kBudget + slack);

  std::vector<std::thread> readers;
  std::atomic<int> matched{0};
  for (int i = 0; i < kClients; ++i) {
    readers.emplace_back([&, i] {
      absl::StatusOr<std::string> replies =
          clients[i].ReadExactly(senders[i]->expected.size(), Deadline(absl::Seconds(120)));
      if (replies.ok() && *replies == senders[i]->expected) matched.fetch_add(1);
    });
  }
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(matched.load(), kClients);
  senders.clear();  // joins the writers
  for (auto& client : clients) client.Close();
  EXPECT_TRUE(WaitUntil([&] { return gw_->active_connections() == 0; }));
  EXPECT_EQ(QueuedBytes(), 0);
}

// Partial frames alone can take the gateway over its budget. Their blocks
// are freed only by reading the rest, so a connection with a frame begun may
// still complete it in the room its block has: every holder that finishes
// its frame is answered, the budget frees up, and a newcomer is served
// (no frame timeout to break a deadlock here: there must be none).
TEST_P(AbuseTest, PartialFramesOverBudgetStillComplete) {
  constexpr int kHolders = 10;
  constexpr size_t kFirstPart = 70'000;
  ReactorOptions options;
  options.max_queued_bytes = 1 << 20;
  options.frame_timeout = absl::ZeroDuration();
  StartGateway(options, /*reactors=*/1);
  std::mt19937_64 rng(3);
  std::vector<TestClient> holders;
  std::vector<std::string> frames;
  for (int i = 0; i < kHolders; ++i) {
    frames.push_back(Frame(RandomBytes(rng, kMaxPayload)));
    holders.push_back(Connect());
    ASSERT_OK(holders.back().WriteAll(frames.back().substr(0, kFirstPart)));
  }
  // Until the gateway stops reading: the budget is spent on partial frames.
  uint64_t last_in = 0;
  int stable_polls = 0;
  ASSERT_TRUE(WaitUntil([&] {
    const uint64_t in = SumStat(*gw_, &ReactorStats::bytes_in);
    stable_polls = in == last_in ? stable_polls + 1 : 0;
    last_in = in;
    absl::SleepFor(absl::Milliseconds(20));
    return stable_polls >= 25;
  }));
  EXPECT_LT(last_in, kHolders * kFirstPart);
  EXPECT_GT(QueuedBytes(), options.max_queued_bytes);

  for (int i = 0; i < kHolders; ++i) {
    ASSERT_TRUE(holders[i].WriteAll(frames[i].substr(kFirstPart)).ok());
    absl::StatusOr<std::string> reply = holders[i].ReadExactly(frames[i].size());
    ASSERT_TRUE(reply.ok()) << "holder " << i << ": " << reply.status();
    EXPECT_TRUE(*reply == ReversedFrame(frames[i].substr(kHeaderSize))) << "holder " << i;
  }
  TestClient newcomer = Connect();
  absl::StatusOr<std::string> reply = newcomer.RoundTrip("abc");
  ASSERT_OK(reply);
  EXPECT_EQ(*reply, "cba");
  EXPECT_EQ(QueuedBytes(), 0);
}

// A large listing is taken in slices, one per loop turn, so I/O runs in
// between: listing 2,000 connections on one reactor takes at least
// 2000 / 256 turns (each a wakeup), and still returns every connection
// exactly once, in fd order.
TEST_P(AbuseTest, LargeListingIsTakenInSlicesAcrossLoopTurns) {
  constexpr int kClients = 2000;
  RaiseFdLimit();
  StartGateway(ReactorOptions{}, /*reactors=*/1);
  std::vector<TestClient> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(Connect());
  ASSERT_TRUE(WaitUntil([&] { return gw_->active_connections() == kClients; }));
  const uint64_t wakeups_before = gw_->reactor_stats(0).wakeups.Get();
  absl::StatusOr<ConnectionPage> page = gw_->ListConnections(ListQuery{});
  const uint64_t wakeups = gw_->reactor_stats(0).wakeups.Get() - wakeups_before;
  ASSERT_OK(page);
  ASSERT_EQ(page->connections.size(), static_cast<size_t>(kClients));
  EXPECT_EQ(page->total_matching, static_cast<size_t>(kClients));
  for (size_t i = 1; i < page->connections.size(); ++i) {
    ASSERT_LT(page->connections[i - 1].fd, page->connections[i].fd);
  }
  EXPECT_GE(wakeups, static_cast<uint64_t>(kClients / 256));
}

// CloseConnection{fd, id} aimed at a client that has left must not close the
// newcomer that the kernel gave the same fd number.
TEST_P(AbuseTest, CloseByIdSparesTheNewcomerOnAReusedFd) {
  StartGateway(ReactorOptions{}, /*reactors=*/1);
  int pair_a[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair_a), 0);
  ASSERT_OK(gw_->AdoptConnection(pair_a[1]));
  const int server_fd = pair_a[1];
  absl::StatusOr<ConnectionInfo> old_info;
  ASSERT_TRUE(WaitUntil([&] {
    old_info = gw_->GetConnection(server_fd);
    return old_info.ok();
  }));
  // The newcomer's sockets exist before the number is freed, so they do not take it.
  int pair_b[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair_b), 0);
  // The old client leaves; the gateway closes its end and frees the number
  // (at the end of the loop turn that counted the close).
  close(pair_a[0]);
  ASSERT_TRUE(WaitUntil([&] { return fcntl(server_fd, F_GETFD) == -1 && errno == EBADF; }));
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kPeerClosed), 1u);

  // A newcomer on the same fd number.
  const int reused = fcntl(pair_b[1], F_DUPFD_CLOEXEC, server_fd);
  ASSERT_EQ(reused, server_fd) << "fd " << server_fd << " was taken by something else";
  close(pair_b[1]);
  ASSERT_OK(gw_->AdoptConnection(reused));
  absl::StatusOr<ConnectionInfo> new_info;
  ASSERT_TRUE(WaitUntil([&] {
    new_info = gw_->GetConnection(server_fd);
    return new_info.ok();
  }));
  ASSERT_NE(new_info->id, old_info->id);

  absl::Status get = gw_->GetConnection(server_fd, old_info->id).status();
  EXPECT_TRUE(absl::IsNotFound(get)) << get;
  absl::Status close_old = gw_->CloseConnection(server_fd, old_info->id, CloseMode::kForce);
  EXPECT_TRUE(absl::IsNotFound(close_old)) << close_old;
  EXPECT_EQ(close_old.message(), absl::StrCat("no connection with fd ", server_fd, " and id ", old_info->id));

  // The newcomer is untouched and served.
  ASSERT_EQ(write(pair_b[0], "00002hi", 7), 7);
  char reply[7];
  size_t got = 0;
  ASSERT_TRUE(WaitUntil([&] {
    const ssize_t n = recv(pair_b[0], reply + got, sizeof reply - got, MSG_DONTWAIT);
    if (n > 0) got += static_cast<size_t>(n);
    return got == sizeof reply;
  }));
  EXPECT_EQ(std::string(reply, 7), "00002ih");
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kControlPlane), 0u);
  EXPECT_OK(gw_->CloseConnection(server_fd, new_info->id, CloseMode::kFlush));
  EXPECT_EQ(recv(pair_b[0], reply, sizeof reply, 0), 0);  // the gateway's FIN
  close(pair_b[0]);
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kControlPlane) == 1; }));
}

}  // namespace
}  // namespace gateway::testing
