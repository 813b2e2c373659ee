// The blocking IO model (one thread per connection) through the Gateway
// facade: the protocol byte for byte, closes and their reasons, admission,
// the control-plane calls, observers, shutdown, and balanced books.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gateway/blocking_server.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/recording_observer.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

using ::testing::ElementsAre;

class BlockingServerTest : public ::testing::Test {
 protected:
  void StartGateway(ReactorOptions reactor = {}) {
    GatewayOptions options;
    reactor.io_model = IoModel::kBlocking;
    options.reactor = reactor;
    ASSERT_OK_AND_ASSIGN(gw_, StartTestGateway(options));
    ASSERT_EQ(gw_->num_reactors(), 1);
  }

  // Every connection closed exactly once, with a reason; no gauge above zero.
  void TearDown() override {
    if (!gw_) return;
    EXPECT_TRUE(WaitUntil([this] { return Balanced(); })) << "connections left open or counters unbalanced";
    gw_->Shutdown(absl::Seconds(5));
    EXPECT_TRUE(Balanced());
  }

  bool Balanced() const {
    const ReactorStats& stats = gw_->reactor_stats(0);
    uint64_t closed = 0;
    for (const RelaxedCounter& c : stats.closed) closed += c.Get();
    int64_t in_states = 0;
    for (const RelaxedGauge& g : stats.by_state) in_states += g.Get();
    return gw_->active_connections() == 0 && stats.active.Get() == 0 && in_states == 0 &&
           closed == stats.accepted.Get();
  }

  bool AwaitClosed(CloseReason reason, uint64_t count) {
    return WaitUntil([&] { return ClosedCount(*gw_, reason) == count; });
  }

  TestClient Connect() {
    absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
    EXPECT_OK(client);
    return client.ok() ? *std::move(client) : TestClient();
  }

  std::unique_ptr<Gateway> gw_;
};

TEST_F(BlockingServerTest, RoundTripIsExact) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll("00003abc"));
  ASSERT_OK_AND_ASSIGN(std::string response, client.ReadExactly(8));
  EXPECT_EQ(response, "00003cba");
  client.Close();
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, 1));
  const ReactorStats& stats = gw_->reactor_stats(0);
  EXPECT_EQ(stats.frames_in.Get(), 1u);
  EXPECT_EQ(stats.frames_out.Get(), 1u);
  EXPECT_EQ(stats.bytes_in.Get(), 8u);
  EXPECT_EQ(stats.bytes_out.Get(), 8u);
  EXPECT_EQ(stats.request_duration.count(), 1u);
}

TEST_F(BlockingServerTest, PipelinedMixedSizesFromConcurrentClientsAreByteExact) {
  StartGateway();
  constexpr int kClients = 4;
  constexpr int kFrames = 24;
  std::vector<std::string> requests(kClients);
  std::vector<std::string> expected(kClients);
  std::mt19937_64 rng(42);
  for (int c = 0; c < kClients; ++c) {
    for (int f = 0; f < kFrames; ++f) {
      // The extremes and everything between, 99,999 included.
      const size_t size = f == 0 ? 1 : f == 1 ? 99999 : 1 + rng() % 99999;
      const std::string payload = RandomBytes(rng, size);
      requests[c] += Frame(payload);
      expected[c] += ReversedFrame(payload);
    }
  }
  std::vector<TestClient> clients;
  for (int c = 0; c < kClients; ++c) clients.push_back(Connect());
  std::vector<absl::StatusOr<std::string>> got(kClients, absl::UnknownError("not run"));
  std::vector<absl::Status> wrote(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    // Writers and readers apart: the server blocks in send() while we write.
    threads.emplace_back(
        [&, c] { wrote[c] = clients[c].WriteInPieces(requests[c], 7919, Deadline(absl::Seconds(60))); });
    threads.emplace_back([&, c] { got[c] = clients[c].ReadExactly(expected[c].size(), Deadline(absl::Seconds(60))); });
  }
  for (std::thread& t : threads) t.join();
  uint64_t bytes = 0;
  for (int c = 0; c < kClients; ++c) {
    EXPECT_OK(wrote[c]);
    ASSERT_OK(got[c].status());
    EXPECT_TRUE(*got[c] == expected[c]) << "client " << c << ": responses differ";
    bytes += requests[c].size();
  }
  for (TestClient& client : clients) client.Close();
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, kClients));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_in), uint64_t{kClients * kFrames});
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_out), uint64_t{kClients * kFrames});
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::bytes_in), bytes);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::bytes_out), bytes);
}

TEST_F(BlockingServerTest, HalfAFrameThenCloseIsDroppedAsPeerClosed) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip("first"));
  EXPECT_EQ(response, "tsrif");
  ASSERT_OK(client.WriteAll("00010abc"));
  ASSERT_OK(client.ShutdownWrite());
  ASSERT_OK_AND_ASSIGN(std::string rest, client.ReadUntilEof());
  EXPECT_EQ(rest, "");
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, 1));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_in), 1u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::bytes_in), 10u + 8u);
}

TEST_F(BlockingServerTest, PeerResetIsCountedAsReset) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK(client.RoundTrip("bye").status());
  ASSERT_OK(client.SetLingerZero());
  client.Close();  // RST
  EXPECT_TRUE(AwaitClosed(CloseReason::kReset, 1));
}

TEST_F(BlockingServerTest, ResetWhileBlockedInSend) {
  StartGateway();
  TestClient bystander = Connect();
  ASSERT_OK(bystander.RoundTrip("before").status());
  TestClient client = Connect();
  ASSERT_OK(client.SetReceiveBuffer(4096));
  ASSERT_OK_AND_ASSIGN(ConnectionInfo info, FindConnection(*gw_, client));
  // Large frames, never read, until the server's thread sits in send().
  const std::string frame = Frame(std::string(kMaxPayload, 'r'));
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 400 && !stop.load(); ++i) (void)client.WriteAll(frame, Deadline(absl::Milliseconds(100)));
  });
  const bool in_send = WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info.fd, info.id);
    return now.ok() && now->state == ConnectionState::kWrite && now->need_write > 0;
  });
  stop.store(true);
  writer.join();
  ASSERT_TRUE(in_send);
  ASSERT_OK(client.SetLingerZero());
  client.Close();  // RST
  EXPECT_TRUE(AwaitClosed(CloseReason::kReset, 1));
  ASSERT_OK_AND_ASSIGN(std::string reply, bystander.RoundTrip("after"));
  EXPECT_EQ(reply, "retfa");
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kError), 0u);
}

TEST_F(BlockingServerTest, AHundredConnectionsEachOnItsOwnThread) {
  StartGateway();
  constexpr int kClients = 100;
  std::vector<TestClient> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(Connect());
  for (int i = 0; i < kClients; ++i) {
    const std::string payload = std::to_string(i) + "-payload";
    ASSERT_OK_AND_ASSIGN(std::string response, clients[i].RoundTrip(payload));
    EXPECT_EQ(response, Reversed(payload));
  }
  EXPECT_EQ(gw_->active_connections(), kClients);
  EXPECT_EQ(gw_->reactor_stats(0).active.Get(), kClients);
  for (TestClient& client : clients) client.Close();
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, kClients));
}

TEST_F(BlockingServerTest, BadHeaderDeliversEarlierResponsesThenEof) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("abc") + Frame("hello") + "12x45"));
  ASSERT_OK_AND_ASSIGN(std::string got, client.ReadUntilEof());
  EXPECT_EQ(got, ReversedFrame("abc") + ReversedFrame("hello"));
  client.Close();  // ends the server's wait for our FIN
  EXPECT_TRUE(AwaitClosed(CloseReason::kProtocolError, 1));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::protocol_errors), 1u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::frames_out), 2u);
}

TEST_F(BlockingServerTest, CloseConnectionByFd) {
  StartGateway();
  TestClient flushed = Connect();
  TestClient forced = Connect();
  ASSERT_OK(flushed.RoundTrip("x").status());
  ASSERT_OK(forced.RoundTrip("y").status());
  ASSERT_OK_AND_ASSIGN(ConnectionInfo flushed_info, FindConnection(*gw_, flushed));
  ASSERT_OK_AND_ASSIGN(ConnectionInfo forced_info, FindConnection(*gw_, forced));

  EXPECT_EQ(gw_->CloseConnection(flushed_info.fd, flushed_info.id + 1000, CloseMode::kFlush).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(gw_->CloseConnection(-5, 0, CloseMode::kFlush).code(), absl::StatusCode::kNotFound);
  ASSERT_OK(gw_->CloseConnection(flushed_info.fd, flushed_info.id, CloseMode::kFlush));
  EXPECT_OK(flushed.ExpectEof());
  ASSERT_OK(gw_->CloseConnection(forced_info.fd, 0, CloseMode::kForce));
  EXPECT_OK(forced.ReadUntilEof().status());
  EXPECT_TRUE(AwaitClosed(CloseReason::kControlPlane, 2));
  EXPECT_EQ(gw_->GetConnection(flushed_info.fd, flushed_info.id).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BlockingServerTest, ListConnectionsShowsEveryConnectionAsBlocking) {
  StartGateway();
  constexpr int kClients = 5;
  std::vector<TestClient> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(Connect());
    ASSERT_OK(clients.back().RoundTrip("ping").status());
  }
  // A client can read a response before the server's send() has returned
  // and counted it: wait for the counters to settle (the connection's own
  // are counted before the shared ones).
  EXPECT_TRUE(WaitUntil([&] { return SumStat(*gw_, &ReactorStats::frames_out) == kClients; }));
  ASSERT_OK_AND_ASSIGN(ConnectionPage page, gw_->ListConnections(ListQuery{}));
  ASSERT_EQ(page.connections.size(), size_t{kClients});
  EXPECT_EQ(page.total_matching, size_t{kClients});
  EXPECT_FALSE(page.has_more());
  for (size_t i = 0; i < page.connections.size(); ++i) {
    const ConnectionInfo& info = page.connections[i];
    EXPECT_EQ(info.io_model, IoModel::kBlocking);
    EXPECT_EQ(info.reactor, 0);
    EXPECT_EQ(info.bytes_in, 9u);
    EXPECT_EQ(info.bytes_out, 9u);
    EXPECT_EQ(info.frames_in, 1u);
    EXPECT_EQ(info.frames_out, 1u);
    EXPECT_EQ(info.have_read, 0u);
    EXPECT_EQ(info.need_read, 5u);
    if (i > 0) {
      EXPECT_LT(page.connections[i - 1].fd, info.fd);
    }
  }
  // Pages of two: 2 + 2 + 1.
  ListQuery query;
  query.limit = 2;
  ASSERT_OK_AND_ASSIGN(ConnectionPage first, gw_->ListConnections(query));
  ASSERT_EQ(first.connections.size(), 2u);
  EXPECT_EQ(first.next_after_fd, page.connections[1].fd);
  query.after_fd = first.next_after_fd;
  ASSERT_OK_AND_ASSIGN(ConnectionPage second, gw_->ListConnections(query));
  ASSERT_EQ(second.connections.size(), 2u);
  EXPECT_EQ(second.connections[0].fd, page.connections[2].fd);
  query.after_fd = second.next_after_fd;
  ASSERT_OK_AND_ASSIGN(ConnectionPage third, gw_->ListConnections(query));
  ASSERT_EQ(third.connections.size(), 1u);
  EXPECT_FALSE(third.has_more());
  // A half-read frame shows in the have/need counters.
  ASSERT_OK(clients[0].WriteAll("00010abc"));
  ASSERT_OK_AND_ASSIGN(ConnectionInfo info, FindConnection(*gw_, clients[0]));
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info.fd, info.id);
    return now.ok() && now->have_read == 8 && now->need_read == 7;
  }));
}

TEST_F(BlockingServerTest, MaxConnectionsRejectsAndCounts) {
  ReactorOptions reactor;
  reactor.max_connections = 2;
  StartGateway(reactor);
  TestClient a = Connect();
  TestClient b = Connect();
  ASSERT_OK(a.RoundTrip("a").status());
  ASSERT_OK(b.RoundTrip("b").status());
  TestClient c = Connect();
  EXPECT_OK(c.ExpectEof());
  EXPECT_TRUE(AwaitClosed(CloseReason::kMaxConnections, 1));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::rejected), 1u);
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::accepted), 3u);
  ASSERT_OK_AND_ASSIGN(std::string still, a.RoundTrip("still"));
  EXPECT_EQ(still, "llits");
}

TEST_F(BlockingServerTest, ShutdownWithIdleClientsReturnsAndEveryClientSeesEof) {
  StartGateway();
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ASSERT_OK(clients.back().RoundTrip("idle").status());
  }
  gw_->Shutdown(absl::Seconds(10));
  for (TestClient& client : clients) EXPECT_OK(client.ExpectEof());
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kShutdown), 3u);
  EXPECT_TRUE(Balanced());
  EXPECT_EQ(gw_->ListConnections(ListQuery{}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(gw_->GetConnection(3).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(gw_->CloseConnection(3, 0, CloseMode::kForce).code(), absl::StatusCode::kUnavailable);
  // The listener is closed: a new client is refused or sees EOF, never served.
  absl::StatusOr<TestClient> late = TestClient::Connect(gw_->port(), Deadline(absl::Seconds(2)));
  if (late.ok()) {
    EXPECT_FALSE(late->RoundTrip("x", Deadline(absl::Seconds(2))).ok());
  }
}

TEST_F(BlockingServerTest, ShutdownForcesAClientThatDoesNotReadAtTheDeadline) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK(client.SetReceiveBuffer(4096));
  // Enough responses to fill both socket buffers: the server blocks in send().
  const std::string frame = Frame(std::string(99999, 'z'));
  std::string many;
  for (int i = 0; i < 64; ++i) many += frame;
  std::thread writer([&] { (void)client.WriteAll(many, Deadline(absl::Seconds(30))); });
  ASSERT_TRUE(WaitUntil([&] { return SumStat(*gw_, &ReactorStats::frames_in) > 0; }));
  gw_->Shutdown(absl::Milliseconds(200));
  writer.join();
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kShutdown), 1u);
  EXPECT_TRUE(Balanced());
}

TEST_F(BlockingServerTest, IdleAndFrameTimeoutsClose) {
  ReactorOptions reactor;
  reactor.idle_timeout = absl::Milliseconds(300);
  reactor.frame_timeout = absl::Milliseconds(100);
  StartGateway(reactor);
  TestClient idle = Connect();
  TestClient slow = Connect();
  ASSERT_OK(idle.RoundTrip("hi").status());
  ASSERT_OK(slow.WriteAll("00009abc"));
  EXPECT_OK(slow.ExpectEof());
  EXPECT_OK(idle.ExpectEof());
  slow.Close();  // ends the server's wait for our FIN
  idle.Close();
  EXPECT_TRUE(AwaitClosed(CloseReason::kFrameTimeout, 1));
  EXPECT_TRUE(AwaitClosed(CloseReason::kIdleTimeout, 1));
}

TEST_F(BlockingServerTest, ObserversSeeTheLifecycle) {
  StartGateway();
  auto observer = std::make_shared<RecordingObserver>();
  ASSERT_OK(gw_->AddObserver(observer));
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK(client.RoundTrip("abc").status());
  client.Close();
  const std::vector<ConnectionEvent> events = observer->WaitForClosed(peer, Deadline());
  EXPECT_THAT(RecordingObserver::Describe(events),
              ElementsAre("opened:accept", "read", "process", "write", "read", "closing", "closed:peer_closed"));
  for (const ConnectionEvent& e : events) EXPECT_EQ(e.connection.io_model, IoModel::kBlocking);
  gw_->RemoveObserver(observer.get());
  const size_t seen = observer->size();
  TestClient other = Connect();
  ASSERT_OK(other.RoundTrip("abc").status());
  other.Close();
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, 2));
  EXPECT_EQ(observer->size(), seen);
}

TEST_F(BlockingServerTest, AdoptedSocketIsServed) {
  StartGateway();
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  ASSERT_OK(gw_->AdoptConnection(pair[0]));
  const std::string request = Frame("adopted");
  ASSERT_EQ(write(pair[1], request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string got;
  char buf[64];
  while (got.size() < request.size()) {
    const ssize_t n = read(pair[1], buf, sizeof buf);  // blocking: the server answers or closes
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, ReversedFrame("adopted"));
  close(pair[1]);
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, 1));
}

TEST_F(BlockingServerTest, OutOfFdsCountsAcceptErrorsAndBacksOff) {
  StartGateway();
  // The client's socket exists before the fd table is filled; the server's
  // accept4() is then the first call that needs a new fd.
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  const timeval tv{20, 0};  // bounds every blocking call below
  ASSERT_EQ(setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
  ASSERT_EQ(setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(client) + 64;  // a small table to fill
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;
  for (int i = 0; i < 1024; ++i) {
    const int fd = fcntl(client, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) break;
    fillers.push_back(fd);
  }
  sockaddr_in server{};
  server.sin_family = AF_INET;
  server.sin_port = htons(static_cast<uint16_t>(gw_->port()));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // The handshake completes in the kernel's backlog; accept4() hits EMFILE.
  const int connected = connect(client, reinterpret_cast<const sockaddr*>(&server), sizeof server);
  const bool errors_seen = connected == 0 && WaitUntil([&] { return SumStat(*gw_, &ReactorStats::accept_errors) > 0; });
  // The limit goes back up before any filler closes: the acceptor may wake
  // at the first free slot, and its connection thread (and UBSan's vptr
  // check, which opens a pipe) must not find the table full again.
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  for (int fd : fillers) close(fd);
  ASSERT_EQ(connected, 0);
  EXPECT_TRUE(errors_seen);
  EXPECT_GT(SumStat(*gw_, &ReactorStats::accept_backoffs), 0u);
  // With fds back, the acceptor resumes after its back-off and serves the client.
  const std::string request = Frame("back");
  ASSERT_EQ(send(client, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string got;
  char buf[64];
  while (got.size() < request.size()) {
    const ssize_t n = recv(client, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(got, ReversedFrame("back"));
  close(client);
  EXPECT_TRUE(AwaitClosed(CloseReason::kPeerClosed, 1));
}

TEST_F(BlockingServerTest, LiveSwitchesAndReactorPostsAreRefused) {
  StartGateway();
  EXPECT_EQ(gw_->io_model(), IoModel::kBlocking);
  EXPECT_EQ(gw_->SetTriggerMode(TriggerMode::kLevel).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(gw_->SetIoModel(IoModel::kPoll).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(gw_->SetIoModel(IoModel::kBlocking).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(gw_->PostForTesting(0, [] {}));
  EXPECT_EQ(gw_->io_model_switches(), 0u);
  EXPECT_EQ(gw_->trigger_mode_switches(), 0u);
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip("still served"));
  EXPECT_EQ(response, "devres llits");
}

TEST_F(BlockingServerTest, CallsBeforeStartAreRefused) {
  GatewayOptions options;
  options.listen_address = "127.0.0.1:0";
  options.reactor.io_model = IoModel::kBlocking;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Gateway> gw, Gateway::Create(options));
  EXPECT_EQ(gw->num_reactors(), 1);
  EXPECT_EQ(gw->ListConnections(ListQuery{}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(gw->CloseConnection(3, 0, CloseMode::kFlush).code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace gateway::testing
