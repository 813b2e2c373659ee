// The GatewayControl service through a real gRPC channel against a real
// in-process gateway: every RPC, every error status, paging, the state
// filter, CloseConnection as the client sees it, the watch stream (including
// drop-and-count for a watcher that does not read), and exact GetStats
// figures for a known workload.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
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

// A gateway whose connections stop reading after 1 KiB of queued output, so
// a client that does not read ends up in WRITE with responses pending.
GatewayOptions SmallHighWater() {
  GatewayOptions options = TwoReactors();
  options.reactor.high_water = 1024;
  options.reactor.low_water = 512;
  return options;
}

class ControlServiceTest : public ControlFixture {
 protected:
  // Pipelines 20 MB of frames with random payloads from a background thread
  // without reading, until the connection is paused in WRITE (the kernel
  // buffers on loopback hold a few MB); returns the payloads. The writer stays
  // blocked while the gateway does not read: join `writer_` (before closing
  // the client) once the client has read or the connection has ended.
  std::vector<std::string> FillUntilPaused(TestClient& client, int fd, int frames = 400) {
    std::mt19937_64 rng(fd);
    std::vector<std::string> payloads;
    std::string bytes;
    for (int i = 0; i < frames; ++i) {
      payloads.push_back(RandomBytes(rng, 50000));
      bytes += Frame(payloads.back());
    }
    writer_ = std::thread([&client, bytes = std::move(bytes)] { (void)client.WriteAll(bytes); });
    EXPECT_TRUE(WaitUntil([&] {
      v1::Connection connection;
      return GetConnection(fd, &connection).ok() && connection.state() == v1::CONNECTION_STATE_WRITE &&
             connection.need_write() > 0;
    })) << "the connection never paused";
    return payloads;
  }

  void TearDown() override {
    if (writer_.joinable()) writer_.join();
    ControlFixture::TearDown();
  }

  std::thread writer_;
};

TEST_F(ControlServiceTest, GetAndSetTriggerMode) {
  Start(TwoReactors());
  TestClient client = Connect();
  const int fd = FdOf(client);

  grpc::ClientContext context;
  SetDeadline(&context);
  v1::TriggerModeStatus status;
  ASSERT_TRUE(stub_->GetTriggerMode(&context, v1::GetTriggerModeRequest(), &status).ok());
  EXPECT_EQ(status.mode(), v1::TRIGGER_MODE_EDGE);
  EXPECT_EQ(status.switches(), 0u);

  ASSERT_TRUE(SetMode(v1::TRIGGER_MODE_LEVEL, &status).ok());
  EXPECT_EQ(status.mode(), v1::TRIGGER_MODE_LEVEL);
  EXPECT_EQ(status.switches(), 1u);
  // The switch has taken effect on the live connection when the call returns.
  v1::Connection connection;
  ASSERT_TRUE(GetConnection(fd, &connection).ok());
  EXPECT_EQ(connection.trigger_mode(), v1::TRIGGER_MODE_LEVEL);
  absl::StatusOr<std::string> reply = client.RoundTrip("abcde");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "edcba");

  // Setting the current mode changes nothing and is not counted.
  ASSERT_TRUE(SetMode(v1::TRIGGER_MODE_LEVEL, &status).ok());
  EXPECT_EQ(status.switches(), 1u);
  ASSERT_TRUE(SetMode(v1::TRIGGER_MODE_EDGE, &status).ok());
  EXPECT_EQ(status.mode(), v1::TRIGGER_MODE_EDGE);
  EXPECT_EQ(status.switches(), 2u);
  ASSERT_TRUE(GetConnection(fd, &connection).ok());
  EXPECT_EQ(connection.trigger_mode(), v1::TRIGGER_MODE_EDGE);
  reply = client.RoundTrip("xyz");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "zyx");
}

TEST_F(ControlServiceTest, SetTriggerModeRejectsUnspecifiedAndUnknown) {
  Start(TwoReactors());
  for (int mode : {0, 3, -1, 1000}) {
    grpc::Status status = SetMode(static_cast<v1::TriggerMode>(mode));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << mode;
    EXPECT_FALSE(status.error_message().empty());
  }
  EXPECT_EQ(gw_->trigger_mode_switches(), 0u);
}

TEST_F(ControlServiceTest, GetConnectionReportsEveryField) {
  Start(TwoReactors());
  const absl::Time before = absl::Now();
  TestClient client = Connect();
  const int fd = FdOf(client);
  absl::StatusOr<std::string> reply = client.RoundTrip("hello");
  ASSERT_TRUE(reply.ok()) << reply.status();
  // Half a frame: 3 of its 10 payload bytes.
  ASSERT_TRUE(client.WriteAll("00010abc").ok());

  v1::Connection c;
  ASSERT_TRUE(WaitUntil([&] { return GetConnection(fd, &c).ok() && c.bytes_in() == 18 && c.bytes_out() == 10; }))
      << c.DebugString();
  EXPECT_EQ(c.fd(), fd);
  EXPECT_GT(c.id(), 0u);
  EXPECT_EQ(c.peer(), client.peer_name());
  EXPECT_EQ(c.state(), v1::CONNECTION_STATE_READ);
  EXPECT_EQ(c.trigger_mode(), v1::TRIGGER_MODE_EDGE);
  EXPECT_GE(c.reactor(), 0);
  EXPECT_LT(c.reactor(), 2);
  EXPECT_EQ(c.frames_in(), 1u);
  EXPECT_EQ(c.frames_out(), 1u);
  EXPECT_EQ(c.have_read(), 8u);   // header + 3 payload bytes buffered
  EXPECT_EQ(c.need_read(), 7u);   // payload bytes still missing
  EXPECT_EQ(c.have_write(), 0u);  // nothing queued
  EXPECT_EQ(c.need_write(), 0u);
  const absl::Time opened = absl::FromUnixNanos(c.opened_at().seconds() * 1000000000 + c.opened_at().nanos());
  const absl::Time active = absl::FromUnixNanos(c.last_active_at().seconds() * 1000000000 + c.last_active_at().nanos());
  EXPECT_GE(opened, before - absl::Seconds(1));  // wall clock derived from the monotonic one
  EXPECT_LE(opened, active);
  EXPECT_LE(active, absl::Now() + absl::Seconds(1));
}

TEST_F(ControlServiceTest, GetAndCloseConnectionErrors) {
  Start(TwoReactors());
  v1::Connection connection;
  grpc::Status status = GetConnection(100000, &connection);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), "no connection with fd 100000");
  EXPECT_EQ(GetConnection(-1, &connection).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  for (bool force : {false, true}) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CloseConnectionRequest request;
    request.set_fd(100000);
    request.set_force(force);
    v1::CloseConnectionResponse response;
    status = stub_->CloseConnection(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::CloseConnectionRequest request;
  request.set_fd(-5);
  v1::CloseConnectionResponse response;
  EXPECT_EQ(stub_->CloseConnection(&context, request, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// With an id, Get/CloseConnection refuse a connection that has the fd but
// is not the one meant (fds are reused, ids never are).
TEST_F(ControlServiceTest, GetAndCloseByIdRefuseAnotherConnectionOnTheFd) {
  Start(TwoReactors());
  TestClient client = Connect();
  const int fd = FdOf(client);
  v1::Connection c;
  ASSERT_TRUE(GetConnection(fd, &c).ok());
  const uint64_t wrong_id = c.id() + 1000;

  grpc::ClientContext get_context;
  SetDeadline(&get_context);
  v1::GetConnectionRequest get;
  get.set_fd(fd);
  get.set_id(wrong_id);
  v1::Connection got;
  grpc::Status status = stub_->GetConnection(&get_context, get, &got);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(status.error_message(), absl::StrCat("no connection with fd ", fd, " and id ", wrong_id));

  for (bool force : {false, true}) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CloseConnectionRequest request;
    request.set_fd(fd);
    request.set_id(wrong_id);
    request.set_force(force);
    v1::CloseConnectionResponse response;
    status = stub_->CloseConnection(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  }
  // Untouched, and reachable by its own id.
  absl::StatusOr<std::string> reply = client.RoundTrip("still-here");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "ereh-llits");
  grpc::ClientContext right_context;
  SetDeadline(&right_context);
  get.set_id(c.id());
  ASSERT_TRUE(stub_->GetConnection(&right_context, get, &got).ok());
  EXPECT_EQ(got.id(), c.id());
}

TEST_F(ControlServiceTest, ListConnectionsPagesEveryFdExactlyOnce) {
  RaiseFdLimit();
  Start(TwoReactors());
  constexpr int kClients = 300;
  std::vector<TestClient> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(Connect());
  v1::ListConnectionsResponse page;
  ASSERT_TRUE(WaitUntil([&] { return List({}, &page).ok() && page.total_size() == kClients; }));
  EXPECT_EQ(page.connections_size(), kClients);  // default page size 1000
  EXPECT_TRUE(page.next_page_token().empty());

  for (int page_size : {100, 7, 299, 300, 301}) {
    SCOPED_TRACE(page_size);
    std::vector<int> fds;
    std::set<std::string> peers;
    v1::ListConnectionsRequest request;
    request.set_page_size(page_size);
    int pages = 0;
    for (; pages < 1000; ++pages) {
      ASSERT_TRUE(List(request, &page).ok());
      EXPECT_EQ(page.total_size(), kClients);
      EXPECT_LE(page.connections_size(), page_size);
      for (const v1::Connection& c : page.connections()) {
        fds.push_back(c.fd());
        peers.insert(c.peer());
      }
      if (page.next_page_token().empty()) break;
      EXPECT_EQ(page.connections_size(), page_size);  // only the last page is short
      request.set_page_token(page.next_page_token());
    }
    EXPECT_EQ(pages + 1, (kClients + page_size - 1) / page_size);
    ASSERT_EQ(fds.size(), static_cast<size_t>(kClients));
    EXPECT_TRUE(std::is_sorted(fds.begin(), fds.end()));
    EXPECT_EQ(std::adjacent_find(fds.begin(), fds.end()), fds.end()) << "an fd was listed twice";
    for (const TestClient& client : clients) EXPECT_EQ(peers.count(client.peer_name()), 1u);
  }

  // Above the maximum, the page size is capped (at 10000), not refused.
  v1::ListConnectionsRequest big;
  big.set_page_size(1 << 30);
  ASSERT_TRUE(List(big, &page).ok());
  EXPECT_EQ(page.connections_size(), kClients);
}

TEST_F(ControlServiceTest, ListConnectionsRejectsBadRequests) {
  Start(TwoReactors());
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(Connect());
  v1::ListConnectionsResponse page;
  ASSERT_TRUE(WaitUntil([&] { return List({}, &page).ok() && page.total_size() == 3; }));

  v1::ListConnectionsRequest request;
  request.set_page_size(-1);
  grpc::Status status = List(request, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "page_size must be >= 0, got -1");

  for (const char* token : {"garbage!", "djE6LTotNQ", "eHl6", "djE6OTo1"}) {  // bad base64, "v1:-:-5", "xyz", "v1:9:5"
    request.Clear();
    request.set_page_token(token);
    status = List(request, &page);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << token;
    EXPECT_EQ(status.error_message(), "invalid page_token: pass next_page_token unchanged") << token;
  }

  request.Clear();
  request.set_state(static_cast<v1::ConnectionState>(42));
  EXPECT_EQ(List(request, &page).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  // A token continues only the listing it came from.
  request.Clear();
  request.set_page_size(1);
  ASSERT_TRUE(List(request, &page).ok());
  ASSERT_FALSE(page.next_page_token().empty());
  request.set_page_token(page.next_page_token());
  request.set_state(v1::CONNECTION_STATE_WRITE);
  status = List(request, &page);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "page_token belongs to a listing with another state filter");
}

TEST_F(ControlServiceTest, ListConnectionsFiltersByState) {
  Start(SmallHighWater());
  std::vector<TestClient> idle;
  for (int i = 0; i < 5; ++i) idle.push_back(Connect());
  TestClient busy = Connect();
  const int busy_fd = FdOf(busy);
  std::vector<std::string> payloads = FillUntilPaused(busy, busy_fd);

  v1::ListConnectionsRequest request;
  v1::ListConnectionsResponse page;
  request.set_state(v1::CONNECTION_STATE_WRITE);
  ASSERT_TRUE(List(request, &page).ok());
  ASSERT_EQ(page.connections_size(), 1);
  EXPECT_EQ(page.connections(0).fd(), busy_fd);
  EXPECT_EQ(page.connections(0).state(), v1::CONNECTION_STATE_WRITE);
  EXPECT_EQ(page.total_size(), 1);

  request.set_state(v1::CONNECTION_STATE_READ);
  ASSERT_TRUE(List(request, &page).ok());
  EXPECT_EQ(page.connections_size(), 5);
  EXPECT_EQ(page.total_size(), 5);
  std::set<std::string> peers;
  for (const v1::Connection& c : page.connections()) {
    EXPECT_EQ(c.state(), v1::CONNECTION_STATE_READ);
    peers.insert(c.peer());
  }
  for (const TestClient& client : idle) EXPECT_EQ(peers.count(client.peer_name()), 1u);

  // Filter and paging together.
  request.set_page_size(2);
  std::set<int> fds;
  for (int pages = 0; pages < 10; ++pages) {
    ASSERT_TRUE(List(request, &page).ok());
    for (const v1::Connection& c : page.connections()) fds.insert(c.fd());
    if (page.next_page_token().empty()) break;
    request.set_page_token(page.next_page_token());
  }
  EXPECT_EQ(fds.size(), 5u);
  EXPECT_EQ(fds.count(busy_fd), 0u);

  request.Clear();
  request.set_state(v1::CONNECTION_STATE_CLOSING);
  ASSERT_TRUE(List(request, &page).ok());
  EXPECT_EQ(page.connections_size(), 0);
  EXPECT_EQ(page.total_size(), 0);

  // Let the busy client drain so its writer finishes: every response, in order.
  std::string expected;
  for (const std::string& p : payloads) expected += ReversedFrame(p);
  absl::StatusOr<std::string> got = busy.ReadExactly(expected.size());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == expected);
  writer_.join();
}

TEST_F(ControlServiceTest, CloseConnectionFlushesResponsesThenEof) {
  Start(SmallHighWater());
  TestClient client = Connect();
  const int fd = FdOf(client);
  std::vector<std::string> payloads = FillUntilPaused(client, fd);
  // Paused: the gateway reads nothing more, so the frames it has answered are fixed.
  v1::Connection before;
  ASSERT_TRUE(GetConnection(fd, &before).ok());
  ASSERT_GT(before.frames_in(), 0u);
  ASSERT_LT(before.frames_in(), payloads.size());

  grpc::ClientContext context;
  SetDeadline(&context);
  v1::CloseConnectionRequest request;
  request.set_fd(fd);
  v1::CloseConnectionResponse response;
  ASSERT_TRUE(stub_->CloseConnection(&context, request, &response).ok());

  std::string expected;
  for (uint64_t i = 0; i < before.frames_in(); ++i) expected += ReversedFrame(payloads[i]);
  absl::StatusOr<std::string> got = client.ReadUntilEof();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), expected.size());
  EXPECT_TRUE(*got == expected) << "responses corrupted";
  writer_.join();  // the gateway discards what it did not read, or resets
  client.Close();
  ASSERT_TRUE(WaitUntil([&] {
    v1::Connection c;
    return GetConnection(fd, &c).error_code() == grpc::StatusCode::NOT_FOUND;
  }));
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kControlPlane), 1u);
}

TEST_F(ControlServiceTest, ForcedCloseEndsAtOnce) {
  Start(SmallHighWater());
  TestClient client = Connect();
  const int fd = FdOf(client);
  std::vector<std::string> payloads = FillUntilPaused(client, fd);

  grpc::ClientContext context;
  SetDeadline(&context);
  v1::CloseConnectionRequest request;
  request.set_fd(fd);
  request.set_force(true);
  v1::CloseConnectionResponse response;
  ASSERT_TRUE(stub_->CloseConnection(&context, request, &response).ok());
  // Gone as soon as the call returns, and no longer listed.
  v1::Connection c;
  EXPECT_EQ(GetConnection(fd, &c).error_code(), grpc::StatusCode::NOT_FOUND);

  // What the client still gets is a prefix of the responses, never garbage,
  // and the connection ends (EOF or reset).
  std::string expected;
  for (const std::string& p : payloads) expected += ReversedFrame(p);
  std::string got;
  absl::StatusOr<std::string> first = client.ReadExactly(1);
  if (first.ok()) {
    got = *first;
    absl::StatusOr<std::string> rest = client.ReadUntilEof();
    if (rest.ok()) got += *rest;  // else a reset cut it short
  } else {
    EXPECT_NE(first.status().code(), absl::StatusCode::kDeadlineExceeded) << first.status();
  }
  EXPECT_LT(got.size(), expected.size());
  EXPECT_TRUE(expected.compare(0, got.size(), got) == 0) << "responses corrupted";
  writer_.join();
  client.Close();
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kControlPlane), 1u);
}

bool HasEvent(const std::vector<v1::ConnectionEvent>& events, v1::ConnectionEvent::Type type, const std::string& peer) {
  return std::any_of(events.begin(), events.end(),
                     [&](const v1::ConnectionEvent& e) { return e.type() == type && e.connection().peer() == peer; });
}

std::vector<v1::ConnectionEvent> EventsOf(const std::vector<v1::ConnectionEvent>& events, const std::string& peer) {
  std::vector<v1::ConnectionEvent> out;
  for (const v1::ConnectionEvent& e : events) {
    if (e.connection().peer() == peer) out.push_back(e);
  }
  return out;
}

TEST_F(ControlServiceTest, WatchStreamsOpenAndCloseWithReason) {
  Start(TwoReactors());
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest());
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_TRUE(
      watch.WaitFor([&](const auto& e) { return HasEvent(e, v1::ConnectionEvent::TYPE_OPENED, peer); }, Deadline()));
  ASSERT_TRUE(client.RoundTrip("abc").ok());
  client.Close();
  ASSERT_TRUE(
      watch.WaitFor([&](const auto& e) { return HasEvent(e, v1::ConnectionEvent::TYPE_CLOSED, peer); }, Deadline()));

  // A protocol error and a CloseConnection, each with its reason.
  TestClient bad = Connect();
  const std::string bad_peer = bad.peer_name();
  ASSERT_TRUE(bad.WriteAll("x").ok());
  ASSERT_TRUE(bad.ExpectEof().ok());
  bad.Close();  // the gateway waits for our FIN before it counts the close
  TestClient closed = Connect();
  const int closed_fd = FdOf(closed);
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::CloseConnectionRequest request;
  request.set_fd(closed_fd);
  v1::CloseConnectionResponse response;
  ASSERT_TRUE(stub_->CloseConnection(&context, request, &response).ok());
  const std::string closed_peer = closed.peer_name();
  ASSERT_TRUE(closed.ExpectEof().ok());
  closed.Close();
  ASSERT_TRUE(watch.WaitFor(
      [&](const auto& e) {
        return HasEvent(e, v1::ConnectionEvent::TYPE_CLOSED, bad_peer) &&
               HasEvent(e, v1::ConnectionEvent::TYPE_CLOSED, closed_peer);
      },
      Deadline()));

  const std::vector<v1::ConnectionEvent> all = watch.events();
  std::vector<v1::ConnectionEvent> events = EventsOf(all, peer);
  ASSERT_EQ(events.size(), 2u);  // no state changes without include_state_changes
  EXPECT_EQ(events[0].type(), v1::ConnectionEvent::TYPE_OPENED);
  EXPECT_EQ(events[1].type(), v1::ConnectionEvent::TYPE_CLOSED);
  EXPECT_EQ(events[1].close_reason(), v1::CLOSE_REASON_PEER_CLOSED);
  EXPECT_EQ(events[1].connection().fd(), events[0].connection().fd());
  EXPECT_EQ(events[1].connection().frames_in(), 1u);
  EXPECT_EQ(events[1].connection().bytes_out(), 8u);
  EXPECT_GT(events[0].time().seconds(), 0);
  EXPECT_EQ(events[0].dropped(), 0u);
  EXPECT_EQ(EventsOf(all, bad_peer).back().close_reason(), v1::CLOSE_REASON_PROTOCOL_ERROR);
  EXPECT_EQ(EventsOf(all, closed_peer).back().close_reason(), v1::CLOSE_REASON_CONTROL_PLANE);
  for (const v1::ConnectionEvent& e : all) EXPECT_NE(e.type(), v1::ConnectionEvent::TYPE_STATE_CHANGED);
}

TEST_F(ControlServiceTest, WatchStreamsStateChangesOnRequest) {
  Start(TwoReactors());
  v1::WatchConnectionsRequest request;
  request.set_include_state_changes(true);
  WatchReader watch(stub_.get(), request);
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(client.RoundTrip(absl::StrCat("frame", i)).ok());
  client.Close();
  ASSERT_TRUE(
      watch.WaitFor([&](const auto& e) { return HasEvent(e, v1::ConnectionEvent::TYPE_CLOSED, peer); }, Deadline()));
  std::vector<v1::ConnectionEvent> events = EventsOf(watch.events(), peer);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.front().type(), v1::ConnectionEvent::TYPE_OPENED);
  EXPECT_EQ(events.back().type(), v1::ConnectionEvent::TYPE_CLOSED);
  // Every state change starts from the state the previous event left, and
  // each request goes through PROCESS.
  int processed = 0;
  for (size_t i = 1; i + 1 < events.size(); ++i) {
    ASSERT_EQ(events[i].type(), v1::ConnectionEvent::TYPE_STATE_CHANGED);
    EXPECT_EQ(events[i].old_state(), events[i - 1].connection().state()) << i;
    EXPECT_NE(events[i].connection().state(), events[i].old_state()) << i;
    if (events[i].connection().state() == v1::CONNECTION_STATE_PROCESS) ++processed;
  }
  EXPECT_GE(processed, 1);
  EXPECT_LE(processed, 3);
}

TEST_F(ControlServiceTest, WatchEndsCleanlyWhenTheServerShutsDown) {
  Start(TwoReactors());
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest());
  TestClient client = Connect();
  ASSERT_TRUE(watch.WaitFor(
      [&](const auto& e) { return HasEvent(e, v1::ConnectionEvent::TYPE_OPENED, client.peer_name()); }, Deadline()));
  // The gateway drains first (the watcher sees the shutdown close), then the server ends the stream with OK.
  gw_->Shutdown(absl::Milliseconds(300));
  server_->Shutdown(absl::Seconds(5));
  grpc::Status status = watch.WaitForEnd(Deadline());
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<v1::ConnectionEvent> events = EventsOf(watch.events(), client.peer_name());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].close_reason(), v1::CLOSE_REASON_SHUTDOWN);
}

// A watcher that does not read loses events, never the gateway's time: what
// it misses is counted in `dropped` on the next event it gets, exactly.
TEST_F(ControlServiceTest, SlowWatcherDropsAndCounts) {
  RaiseFdLimit();
  ControlServerOptions control;
  control.watch_queue_capacity = 8;
  // A tiny HTTP/2 window, so the stream backs up after ~1 KiB.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  Start(TwoReactors(), control, args);
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest(), /*read=*/false);

  // 2000 events (1000 opens, 1000 closes), all while the watcher reads nothing.
  constexpr int kBurst = 1000;
  for (int batch = 0; batch < kBurst / 100; ++batch) {
    std::vector<TestClient> clients;
    for (int i = 0; i < 100; ++i) clients.push_back(Connect());
    for (TestClient& c : clients) ASSERT_TRUE(c.RoundTrip("x").ok());
  }
  // Every close has been published once no reactor lists the connections
  // (the listing runs on each reactor after its earlier work).
  v1::ListConnectionsResponse page;
  ASSERT_TRUE(WaitUntil([&] { return List({}, &page).ok() && page.total_size() == 0; }));
  EXPECT_EQ(gw_->active_connections(), 0);

  // Now read, and open marker connections until one's event arrives: every
  // event queued before it has been delivered or counted by then.
  watch.Resume();
  std::vector<TestClient> markers;
  std::string seen_marker;
  for (int i = 0; i < 50 && seen_marker.empty(); ++i) {
    markers.push_back(Connect());
    FdOf(markers.back());  // listed: its event is queued (or counted) before the next marker's
    watch.WaitFor(
        [&](const auto& events) {
          for (const auto& m : markers) {
            if (HasEvent(events, v1::ConnectionEvent::TYPE_OPENED, m.peer_name())) seen_marker = m.peer_name();
          }
          return !seen_marker.empty();
        },
        absl::Now() + absl::Milliseconds(200));
  }
  ASSERT_FALSE(seen_marker.empty());
  uint64_t received = 0;
  uint64_t dropped = 0;
  for (const v1::ConnectionEvent& e : watch.events()) {
    ++received;
    dropped += e.dropped();
    if (e.connection().peer() == seen_marker) break;
  }
  // Markers are opened one at a time, each once the previous one's event
  // was published, so the ones before the seen marker are accounted too.
  int markers_before = 0;
  for (const auto& m : markers) {
    if (m.peer_name() == seen_marker) break;
    ++markers_before;
  }
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(received + dropped, 2u * kBurst + markers_before + 1);
}

TEST_F(ControlServiceTest, GetStatsFiguresAreExact) {
  Start(TwoReactors());
  ASSERT_TRUE(SetMode(v1::TRIGGER_MODE_LEVEL).ok());
  TestClient a = Connect();
  for (int size : {1, 100, 5000}) {
    std::string payload(size, 'a');
    absl::StatusOr<std::string> reply = a.RoundTrip(payload);
    ASSERT_TRUE(reply.ok()) << reply.status();
  }
  a.Close();  // peer_closed; 3 frames, 5116 bytes each way
  TestClient b = Connect();
  ASSERT_TRUE(b.RoundTrip("abc").ok());
  ASSERT_TRUE(b.WriteAll("x").ok());  // protocol_error; 1 frame, 9 bytes in, 8 out
  ASSERT_TRUE(b.ExpectEof().ok());
  b.Close();  // the gateway waits for our FIN before it counts the close
  TestClient c = Connect();
  ASSERT_TRUE(c.RoundTrip("0123456789").ok());  // control_plane; 15 bytes each way
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::CloseConnectionRequest request;
    request.set_fd(FdOf(c));
    v1::CloseConnectionResponse response;
    ASSERT_TRUE(stub_->CloseConnection(&context, request, &response).ok());
  }
  ASSERT_TRUE(c.ExpectEof().ok());
  c.Close();
  TestClient d = Connect();  // stays open and idle
  FdOf(d);

  v1::Stats stats;
  ASSERT_TRUE(WaitUntil([&] {
    return Stats(&stats).ok() && stats.totals().closed_total() == 3 && stats.totals().bytes_out() == 5139 &&
           stats.totals().active_connections() == 1;
  })) << stats.DebugString();
  const v1::Counters& t = stats.totals();
  EXPECT_EQ(stats.active_connections(), 1);
  EXPECT_EQ(stats.trigger_mode(), v1::TRIGGER_MODE_LEVEL);
  EXPECT_EQ(stats.trigger_mode_switches(), 1u);
  EXPECT_EQ(stats.data_port(), gw_->port());
  EXPECT_GT(stats.uptime().seconds() * 1000000000 + stats.uptime().nanos(), 0);
  EXPECT_EQ(stats.started_at().seconds(), absl::ToUnixSeconds(gw_->started_at()));
  EXPECT_EQ(t.active_connections(), 1);
  EXPECT_EQ(t.by_state().read(), 1);
  EXPECT_EQ(t.by_state().accept() + t.by_state().process() + t.by_state().write() + t.by_state().closing(), 0);
  EXPECT_EQ(t.accepted(), 4u);
  EXPECT_EQ(t.rejected(), 0u);
  EXPECT_EQ(t.closed_total(), 3u);
  EXPECT_EQ(t.closed().peer_closed(), 1u);
  EXPECT_EQ(t.closed().protocol_error(), 1u);
  EXPECT_EQ(t.closed().control_plane(), 1u);
  EXPECT_EQ(t.closed().reset() + t.closed().idle_timeout() + t.closed().max_connections() + t.closed().shutdown() +
                t.closed().error(),
            0u);
  EXPECT_EQ(t.frames_in(), 5u);
  EXPECT_EQ(t.frames_out(), 5u);
  EXPECT_EQ(t.bytes_in(), 5116u + 9 + 15);
  EXPECT_EQ(t.bytes_out(), 5116u + 8 + 15);
  EXPECT_EQ(t.protocol_errors(), 1u);
  EXPECT_EQ(t.accept_errors(), 0u);
  EXPECT_GT(t.wakeups(), 0u);
  // Totals are the sums of the per-reactor figures.
  ASSERT_EQ(stats.reactors_size(), 2);
  v1::Counters sum;
  for (int i = 0; i < stats.reactors_size(); ++i) {
    EXPECT_EQ(stats.reactors(i).index(), i);
    const v1::Counters& r = stats.reactors(i).counters();
    sum.set_accepted(sum.accepted() + r.accepted());
    sum.set_frames_in(sum.frames_in() + r.frames_in());
    sum.set_bytes_out(sum.bytes_out() + r.bytes_out());
    sum.set_closed_total(sum.closed_total() + r.closed_total());
    sum.set_active_connections(sum.active_connections() + r.active_connections());
  }
  EXPECT_EQ(sum.accepted(), t.accepted());
  EXPECT_EQ(sum.frames_in(), t.frames_in());
  EXPECT_EQ(sum.bytes_out(), t.bytes_out());
  EXPECT_EQ(sum.closed_total(), t.closed_total());
  EXPECT_EQ(sum.active_connections(), t.active_connections());
}

}  // namespace
}  // namespace gateway::control::testing

namespace gateway::control::testing {
namespace {

class DrainConnectionsRpcTest : public ControlFixture {};

TEST_F(DrainConnectionsRpcTest, ClosesTheOldestAndCountsThemDrained) {
  GatewayOptions options = TwoReactors();
  options.instance = "pod-7";
  Start(options);
  std::vector<TestClient> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect());
    ASSERT_TRUE(clients.back().RoundTrip("abc").ok());
  }
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::DrainConnectionsRequest request;
  request.set_count(2);
  request.mutable_spread()->set_nanos(100'000'000);
  v1::DrainConnectionsResponse response;
  const grpc::Status status = stub_->DrainConnections(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.selected(), 2u);
  EXPECT_EQ(response.matching(), 3u);
  EXPECT_TRUE(clients[0].ExpectEof().ok());
  EXPECT_TRUE(clients[1].ExpectEof().ok());
  absl::StatusOr<std::string> reply = clients[2].RoundTrip("kept");
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(*reply, "tpek");
  clients[0].Close();
  clients[1].Close();
  v1::Stats stats;
  ASSERT_TRUE(WaitUntil([&] { return Stats(&stats).ok() && stats.totals().closed().drained() == 2; }))
      << stats.DebugString();
  EXPECT_EQ(stats.instance(), "pod-7");
  EXPECT_FALSE(stats.draining());
  gw_->AnnounceDrain();
  ASSERT_TRUE(Stats(&stats).ok());
  EXPECT_TRUE(stats.draining());
}

TEST_F(DrainConnectionsRpcTest, BadRequestsAreInvalidArgument) {
  Start(TwoReactors());
  auto call = [&](const v1::DrainConnectionsRequest& request) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::DrainConnectionsResponse response;
    return stub_->DrainConnections(&context, request, &response).error_code();
  };
  v1::DrainConnectionsRequest none;
  EXPECT_EQ(call(none), grpc::StatusCode::INVALID_ARGUMENT);
  v1::DrainConnectionsRequest too_much;
  too_much.set_fraction(1.5);
  EXPECT_EQ(call(too_much), grpc::StatusCode::INVALID_ARGUMENT);
  v1::DrainConnectionsRequest negative;
  negative.set_fraction(0.5);
  negative.mutable_min_age()->set_seconds(-1);
  EXPECT_EQ(call(negative), grpc::StatusCode::INVALID_ARGUMENT);
  v1::DrainConnectionsRequest all;
  all.set_fraction(1);
  EXPECT_EQ(call(all), grpc::StatusCode::OK);
}

}  // namespace
}  // namespace gateway::control::testing
