// The limits on WatchConnections. The cap on concurrent watchers: the stream
// over it is refused at once with RESOURCE_EXHAUSTED, and a slot frees when a
// stream ends (cancelled, or its client gives up). The byte bound on each
// watcher's queue: a watcher that never reads holds at most that much, and
// every event is either delivered or counted in `dropped`, exactly; checked
// on a session fed by several threads at once and through a real gRPC channel
// against a real in-process gateway. The budget of writes per second all
// watchers share: a watcher that reads at full speed gets no more, and what
// is held back is dropped and counted like the rest.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "control/control_service.h"
#include "control/watch_stream.h"
#include "gtest/gtest.h"
#include "tests/control/control_fixture.h"
#include "tests/control/watch_reader.h"
#include "tests/support/test_client.h"

namespace gateway::control::testing {
namespace {

GatewayOptions TwoReactors() {
  GatewayOptions options;
  options.reactors = 2;
  return options;
}

bool HasOpened(const std::vector<v1::ConnectionEvent>& events, const std::string& peer) {
  for (const v1::ConnectionEvent& e : events) {
    if (e.type() == v1::ConnectionEvent::TYPE_OPENED && e.connection().peer() == peer) return true;
  }
  return false;
}

ConnectionEvent EventWithPeer(std::string peer) {
  ConnectionEvent event;
  event.type = ConnectionEvent::Type::kStateChanged;
  event.connection.peer = std::move(peer);
  return event;
}

// --- The queue bound alone --------------------------------------------------

// A session with no stream bound never writes: it is a watcher that never
// reads. Four threads publish at once, as the reactors do.
TEST(WatchSessionTest, QueueStaysWithinItsByteBoundAndCountsTheRest) {
  WatchPump pump;
  constexpr size_t kBound = 16 * 1024;
  auto session = std::make_shared<WatchSession>(&pump, /*state_changes=*/true, /*max_events=*/1 << 20, kBound);
  // A peer that fits the string's inline buffer, and one on the heap.
  const ConnectionEvent small = EventWithPeer("127.0.0.1:4000");
  const ConnectionEvent large = EventWithPeer("[2001:db8:85a3::8a2e:370:7334]:65535");
  ASSERT_LT(WatchSession::QueuedBytes(small), WatchSession::QueuedBytes(large));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 2000;
  std::atomic<bool> over_bound{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        session->OnEvent((i + t) % 2 == 0 ? small : large);
        if (session->queued_bytes() > kBound) over_bound = true;
      }
    });
  }
  for (std::thread& t : threads) t.join();

  EXPECT_FALSE(over_bound);
  EXPECT_LE(session->queued_bytes(), kBound);
  EXPECT_EQ(session->peak_queued_bytes(), session->queued_bytes());  // nothing left the queue
  // Full: not even the smaller event fits any more (small ones kept coming to the end).
  EXPECT_GT(session->queued_bytes() + WatchSession::QueuedBytes(small), kBound);
  EXPECT_EQ(session->queued_events() + session->dropped_total(), uint64_t{kThreads} * kPerThread);
}

// The event count still bounds the queue when it binds before the bytes do.
TEST(WatchSessionTest, EventCountBoundStillHolds) {
  WatchPump pump;
  auto session = std::make_shared<WatchSession>(&pump, /*state_changes=*/false, /*max_events=*/10, 1 << 20);
  for (int i = 0; i < 25; ++i) session->OnEvent(EventWithPeer("127.0.0.1:4000"));
  EXPECT_EQ(session->queued_events(), 10u);
  EXPECT_EQ(session->dropped_total(), 15u);
  EXPECT_EQ(session->queued_bytes(), 10 * WatchSession::QueuedBytes(EventWithPeer("127.0.0.1:4000")));
}

// The budget a pump shares among its streams: full at the start, then refilled
// at its rate. (A bound that only loosens if the machine is slow.)
TEST(WatchPumpTest, BudgetAllowsItsBurstThenItsRate) {
  const absl::Time start = absl::Now();
  WatchPump pump(/*events_per_sec=*/10);  // a burst of 1
  int taken = 0;
  for (int i = 0; i < 100; ++i) taken += pump.TryTakeWrite() ? 1 : 0;
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_GE(taken, 1);
  EXPECT_LE(taken, 1 + static_cast<int>(elapsed * 10));
  WatchPump unlimited(/*events_per_sec=*/0);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(unlimited.TryTakeWrite());
}

// --- The cap on watchers, through ControlServerOptions ------------------------

class WatchCapTest : public ControlFixture {
 protected:
  // Opens watchers until one is admitted (a slot is freed a moment after the
  // client sees its stream end, once the server has finished it). Admitted
  // means it receives the opening of a connection made after it; refused
  // means RESOURCE_EXHAUSTED at once. Null if none is admitted in time.
  std::unique_ptr<WatchReader> AdmitWatcher() {
    const absl::Time deadline = Deadline();
    for (int attempt = 0; attempt < 500 && absl::Now() < deadline; ++attempt) {
      auto watch = std::make_unique<WatchReader>(stub_.get(), v1::WatchConnectionsRequest());
      TestClient probe = Connect();
      if (watch->WaitFor([&](const auto& e) { return HasOpened(e, probe.peer_name()); }, deadline)) return watch;
      grpc::Status status = watch->WaitForEnd(deadline);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
      if (status.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) return nullptr;
    }
    return nullptr;
  }

  // Opens a watcher and expects it refused because `open` streams are open.
  void ExpectRefused(int open, int max) {
    WatchReader watch(stub_.get(), v1::WatchConnectionsRequest());
    grpc::Status status = watch.WaitForEnd(Deadline());
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(status.error_message(), absl::StrCat("too many watchers: ", open, " streams open, --max_watchers=", max));
    EXPECT_TRUE(watch.events().empty());
  }
};

TEST_F(WatchCapTest, FourthWatcherIsRefusedUntilOneEnds) {
  ControlServerOptions control;
  control.max_watchers = 3;
  Start(TwoReactors(), control);
  // A watcher has its slot once it has the headers.
  std::vector<std::unique_ptr<WatchReader>> watchers;
  for (int i = 0; i < 3; ++i) {
    watchers.push_back(std::make_unique<WatchReader>(stub_.get(), v1::WatchConnectionsRequest()));
  }
  ExpectRefused(3, 3);
  ExpectRefused(3, 3);  // a refusal takes no slot either

  // The three admitted ones are unaffected.
  TestClient client = Connect();
  for (auto& watch : watchers) {
    EXPECT_TRUE(watch->WaitFor([&](const auto& e) { return HasOpened(e, client.peer_name()); }, Deadline()));
  }

  // Cancelling one frees its slot, for exactly one newcomer.
  watchers[0]->Stop();
  std::unique_ptr<WatchReader> admitted = AdmitWatcher();
  ASSERT_NE(admitted, nullptr) << "no slot was freed";
  ExpectRefused(3, 3);
}

TEST_F(WatchCapTest, SlotFreesWhenTheClientGivesUp) {
  ControlServerOptions control;
  control.max_watchers = 1;
  Start(TwoReactors(), control);
  {
    // A client whose deadline passes: the server sees the call cancelled.
    WatchReader expiring(stub_.get(), v1::WatchConnectionsRequest(), /*read=*/true, absl::Seconds(5));
    ExpectRefused(1, 1);
    EXPECT_EQ(expiring.WaitForEnd(Deadline(absl::Seconds(30))).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  }
  EXPECT_NE(AdmitWatcher(), nullptr) << "no slot was freed";
}

TEST_F(WatchCapTest, BadLimitsAreRefusedAtStart) {
  absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(TwoReactors());
  ASSERT_TRUE(gw.ok()) << gw.status();
  ControlServerOptions control;
  control.listen_address = "127.0.0.1:0";
  control.max_watchers = -1;
  absl::StatusOr<std::unique_ptr<ControlServer>> server = StartControlServer(gw->get(), control);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.status().message(), "--max_watchers must be >= 0, got -1");
  control.max_watchers = 0;  // no limit
  control.watch_events_per_sec = -1;
  server = StartControlServer(gw->get(), control);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.status().message(), "--watch_events_per_sec must be >= 0, got -1");
  control.watch_events_per_sec = 0;  // no limit
  control.watch_queue_bytes = kMinWatchQueueBytes - 1;
  server = StartControlServer(gw->get(), control);
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server.status().message(), absl::StrCat("--watch_queue_bytes must be at least ", kMinWatchQueueBytes,
                                                    ", got ", kMinWatchQueueBytes - 1));
  (*gw)->Shutdown(absl::Seconds(5));
}

// --- A stalled watcher, through the service, whose figures it reads ----------

// The service on its own gRPC server, so the test can read its watch figures.
class StalledWatcherTest : public ControlFixture {
 protected:
  void StartService(const WatchLimits& limits, const grpc::ChannelArguments& channel_args) {
    absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(TwoReactors());
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
    service_ = std::make_unique<GatewayControlService>(gw_.get(), limits);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    grpc_server_ = builder.BuildAndStart();
    ASSERT_NE(grpc_server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ =
        grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), channel_args);
    stub_ = v1::GatewayControl::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    channel_.reset();
    if (grpc_server_) {
      service_->EndWatches();
      grpc_server_->Shutdown(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
      grpc_server_->Wait();
      service_->StopPump();
    }
    ControlFixture::TearDown();
  }

  // Opens and closes `threads` x `per_thread` connections from that many
  // client threads at once (both reactors publish concurrently), each after
  // one round trip; returns once every close has been published (no reactor
  // lists a connection any more: the listing runs after its earlier work).
  void OpenAndCloseConnections(int threads, int per_thread) {
    std::atomic<int> failures{0};
    std::vector<std::thread> clients;
    const int port = gw_->port();
    for (int t = 0; t < threads; ++t) {
      clients.emplace_back([&] {
        for (int i = 0; i < per_thread; ++i) {
          absl::StatusOr<TestClient> client = TestClient::Connect(port);
          if (!client.ok() || !client->RoundTrip("x").ok()) ++failures;
        }
      });
    }
    for (std::thread& t : clients) t.join();
    ASSERT_EQ(failures, 0);
    ASSERT_TRUE(WaitUntil([&] {
      absl::StatusOr<ConnectionPage> page = gw_->ListConnections(ListQuery{});
      return page.ok() && page->total_matching == 0;
    }));
  }

  // Opens marker connections, one at a time, until one's opening reaches
  // `watch` (which must be reading): every event queued before it has been
  // delivered or counted by then. Adds up what the watcher received and was
  // told it missed, up to that marker, and how many events the markers
  // before it produced.
  void CountUpToMarker(WatchReader& watch, uint64_t* received, uint64_t* dropped, int* markers_before) {
    std::vector<TestClient> markers;
    std::string seen_marker;
    for (int i = 0; i < 50 && seen_marker.empty(); ++i) {
      markers.push_back(Connect());
      FdOf(markers.back());  // listed: its event is queued (or counted) before the next marker's
      watch.WaitFor(
          [&](const auto& events) {
            for (const auto& m : markers) {
              if (HasOpened(events, m.peer_name())) seen_marker = m.peer_name();
            }
            return !seen_marker.empty();
          },
          absl::Now() + absl::Milliseconds(200));
    }
    ASSERT_FALSE(seen_marker.empty());
    *received = *dropped = 0;
    for (const v1::ConnectionEvent& e : watch.events()) {
      ++*received;
      *dropped += e.dropped();
      if (e.connection().peer() == seen_marker) break;
    }
    *markers_before = 0;
    for (const auto& m : markers) {
      if (m.peer_name() == seen_marker) break;
      ++*markers_before;
    }
  }

  std::unique_ptr<GatewayControlService> service_;
  std::unique_ptr<grpc::Server> grpc_server_;
};

TEST_F(StalledWatcherTest, QueueStaysUnderItsByteBoundAndEveryEventIsAccounted) {
  RaiseFdLimit();
  WatchLimits limits;
  limits.queue_events = 1 << 20;  // the bytes bind
  limits.queue_bytes = 16 * 1024;
  // A tiny HTTP/2 window, so the stream backs up after ~1 KiB.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  StartService(limits, args);
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest(), /*read=*/false);

  // 2000 events (1000 opens, 1000 closes) from both reactors at once, all
  // while the watcher reads nothing.
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  OpenAndCloseConnections(kThreads, kPerThread);

  WatchStats stats = service_->watch_stats();
  EXPECT_EQ(stats.open, 1);
  EXPECT_LE(stats.queued_bytes, limits.queue_bytes);
  EXPECT_LE(stats.peak_queued_bytes, limits.queue_bytes);
  // Full: the bound was reached, to within one event (peers are IPv4 here).
  const size_t largest_event = WatchSession::QueuedBytes(EventWithPeer("255.255.255.255:65535"));
  EXPECT_GT(stats.queued_bytes + largest_event, limits.queue_bytes);
  EXPECT_GT(stats.dropped, 0u);

  // Now read: every event is either delivered or counted.
  watch.Resume();
  uint64_t received = 0;
  uint64_t dropped = 0;
  int markers_before = 0;
  CountUpToMarker(watch, &received, &dropped, &markers_before);
  EXPECT_EQ(received + dropped, 2u * kThreads * kPerThread + markers_before + 1);
  EXPECT_GE(dropped, stats.dropped);  // a marker may be dropped too, while the queue drains
  EXPECT_LE(service_->watch_stats().peak_queued_bytes, limits.queue_bytes);
}

// A watcher that reads as fast as it can still gets no more writes than the
// budget allows; what the budget holds back fills its queue and is counted.
TEST_F(StalledWatcherTest, WritesStayWithinTheBudgetAndEveryEventIsAccounted) {
  RaiseFdLimit();
  WatchLimits limits;
  limits.queue_bytes = 16 * 1024;
  limits.events_per_sec = 200;           // a burst of 20
  const absl::Time start = absl::Now();  // before the pump (and its full bucket) exists
  StartService(limits, grpc::ChannelArguments());
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest());

  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  OpenAndCloseConnections(kThreads, kPerThread);
  // Received so far <= writes started so far <= the burst plus the rate times
  // the time since the bucket was full (slowness only loosens this).
  const size_t received_early = watch.events().size();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_LE(received_early, 20 + static_cast<size_t>(200 * elapsed)) << "after " << elapsed << " s";
  EXPECT_GT(service_->watch_stats().dropped, 0u);

  uint64_t received = 0;
  uint64_t dropped = 0;
  int markers_before = 0;
  CountUpToMarker(watch, &received, &dropped, &markers_before);
  EXPECT_EQ(received + dropped, 2u * kThreads * kPerThread + markers_before + 1);
  EXPECT_LE(service_->watch_stats().peak_queued_bytes, limits.queue_bytes);
}

}  // namespace
}  // namespace gateway::control::testing
