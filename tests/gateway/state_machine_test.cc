// The per-connection state machine, observed from outside: the exact event
// sequence (accept -> read -> process -> write -> read ... -> closing ->
// closed) and close reason for each way a connection ends, and the per-fd
// counters GetConnection reports. Runs in both trigger modes.
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/gateway/recording_observer.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

class StateMachineTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { GATEWAY_SKIP_IF_UNAVAILABLE(GetParam()); }

  void StartGateway(ReactorOptions reactor = {}) {
    GatewayOptions options;
    options.reactors = 1;
    GetParam().ApplyTo(&reactor);
    options.reactor = reactor;
    absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(options);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
    observer_ = std::make_shared<RecordingObserver>();
    ASSERT_TRUE(gw_->AddObserver(observer_).ok());
  }

  void TearDown() override {
    if (gw_) gw_->Shutdown(absl::Seconds(5));
  }

  TestClient Connect() {
    absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : TestClient();
  }

  // The connection's events once it has closed, checked for consistency:
  // each state change names the previous state as its old state.
  std::vector<ConnectionEvent> ClosedEvents(const std::string& peer) {
    std::vector<ConnectionEvent> events = observer_->WaitForClosed(peer, Deadline());
    EXPECT_FALSE(events.empty()) << "connection from " << peer << " never closed";
    for (size_t i = 1; i < events.size(); ++i) {
      if (events[i].type == ConnectionEvent::Type::kStateChanged) {
        EXPECT_EQ(events[i].old_state, events[i - 1].connection.state) << "event " << i;
        EXPECT_NE(events[i].old_state, events[i].connection.state) << "event " << i;
      }
      EXPECT_EQ(events[i].connection.id, events[0].connection.id);
    }
    return events;
  }

  std::unique_ptr<Gateway> gw_;
  std::shared_ptr<RecordingObserver> observer_;
};

TEST_P(StateMachineTest, OneRequestThenPeerClose) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip("abc"));
  EXPECT_EQ(reply, "cba");
  client.Close();
  const std::vector<ConnectionEvent> events = ClosedEvents(peer);
  EXPECT_THAT(RecordingObserver::Describe(events),
              ElementsAre("opened:accept", "read", "process", "write", "read", "closing", "closed:peer_closed"));
  ASSERT_FALSE(events.empty());
  const ConnectionInfo& last = events.back().connection;
  EXPECT_EQ(last.bytes_in, 8u);
  EXPECT_EQ(last.bytes_out, 8u);
  EXPECT_EQ(last.frames_in, 1u);
  EXPECT_EQ(last.frames_out, 1u);
  EXPECT_EQ(last.state, ConnectionState::kClosing);
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kPeerClosed), 1u);
}

TEST_P(StateMachineTest, ThreeSequentialRequests) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  for (absl::string_view payload : {"one", "two", "three"}) {
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip(payload));
    EXPECT_EQ(reply, Reversed(payload));
  }
  client.Close();
  EXPECT_THAT(RecordingObserver::Describe(ClosedEvents(peer)),
              ElementsAre("opened:accept", "read", "process", "write", "read", "process", "write", "read", "process",
                          "write", "read", "closing", "closed:peer_closed"));
}

TEST_P(StateMachineTest, PipelinedRequestsInOneReadAreOneBatch) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK(client.WriteAll(Frame("a") + Frame("bc") + "\r\n" + Frame("def")));
  ASSERT_OK_AND_ASSIGN(const std::string replies, client.ReadExactly(6 + 7 + 8));
  EXPECT_EQ(replies, ReversedFrame("a") + ReversedFrame("bc") + ReversedFrame("def"));
  client.Close();
  const std::vector<ConnectionEvent> events = ClosedEvents(peer);
  EXPECT_THAT(RecordingObserver::Describe(events),
              ElementsAre("opened:accept", "read", "process", "write", "read", "closing", "closed:peer_closed"));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().connection.frames_in, 3u);
  EXPECT_EQ(events.back().connection.frames_out, 3u);
  EXPECT_EQ(events.back().connection.bytes_in, 23u);
  EXPECT_EQ(events.back().connection.bytes_out, 21u);
}

TEST_P(StateMachineTest, ProtocolErrorAfterAGoodFrame) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK(client.WriteAll(Frame("abc") + "abcde"));
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.ReadExactly(8));
  EXPECT_EQ(reply, "00003cba");
  EXPECT_OK(client.ExpectEof());
  client.Close();
  EXPECT_THAT(RecordingObserver::Describe(ClosedEvents(peer)),
              ElementsAre("opened:accept", "read", "process", "write", "read", "closing", "closed:protocol_error"));
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kProtocolError), 1u);
  EXPECT_EQ(gw_->reactor_stats(0).protocol_errors.Get(), 1u);
}

TEST_P(StateMachineTest, ProtocolErrorFirstThing) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK(client.WriteAll("00000"));
  EXPECT_OK(client.ExpectEof());
  client.Close();
  EXPECT_THAT(RecordingObserver::Describe(ClosedEvents(peer)),
              ElementsAre("opened:accept", "read", "closing", "closed:protocol_error"));
}

TEST_P(StateMachineTest, IdleTimeout) {
  ReactorOptions reactor;
  reactor.idle_timeout = absl::Milliseconds(200);
  StartGateway(reactor);
  TestClient idle = Connect();
  TestClient stuck = Connect();  // stops in the middle of a frame
  ASSERT_OK(stuck.WriteAll("00010abc"));
  EXPECT_OK(idle.ExpectEof());
  EXPECT_OK(stuck.ExpectEof());
  EXPECT_THAT(RecordingObserver::Describe(ClosedEvents(idle.peer_name())),
              ElementsAre("opened:accept", "read", "closing", "closed:idle_timeout"));
  const std::vector<ConnectionEvent> stuck_events = ClosedEvents(stuck.peer_name());
  EXPECT_THAT(RecordingObserver::Describe(stuck_events),
              ElementsAre("opened:accept", "read", "closing", "closed:idle_timeout"));
  ASSERT_FALSE(stuck_events.empty());
  EXPECT_EQ(stuck_events.back().connection.bytes_in, 8u);
  EXPECT_EQ(stuck_events.back().connection.have_read, 8u);
  EXPECT_EQ(stuck_events.back().connection.need_read, 7u);
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kIdleTimeout), 2u);
}

TEST_P(StateMachineTest, CloseConnectionGracefulWhenIdle) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  ASSERT_OK(gw_->CloseConnection(info.fd, /*id=*/0, CloseMode::kFlush));
  EXPECT_OK(client.ExpectEof());
  client.Close();
  EXPECT_THAT(RecordingObserver::Describe(ClosedEvents(peer)),
              ElementsAre("opened:accept", "read", "closing", "closed:control_plane"));
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kControlPlane), 1u);
}

TEST_P(StateMachineTest, CloseConnectionForceWhenIdle) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  ASSERT_OK(gw_->CloseConnection(info.fd, /*id=*/0, CloseMode::kForce));
  EXPECT_OK(client.ExpectEof());
  EXPECT_THAT(RecordingObserver::Describe(ClosedEvents(peer)),
              ElementsAre("opened:accept", "read", "closing", "closed:control_plane"));
  EXPECT_TRUE(absl::IsNotFound(gw_->GetConnection(info.fd).status()));
}

TEST_P(StateMachineTest, UnknownFdIsNotFound) {
  StartGateway();
  EXPECT_TRUE(absl::IsNotFound(gw_->CloseConnection(1 << 20, /*id=*/0, CloseMode::kFlush)));
  EXPECT_TRUE(absl::IsNotFound(gw_->CloseConnection(-1, /*id=*/0, CloseMode::kForce)));
  EXPECT_TRUE(absl::IsNotFound(gw_->GetConnection(1 << 20).status()));
}

// Fills the connection's output queue past the high-water mark: the client
// writes `frames` large frames from a thread and does not read.
struct Flood {
  ~Flood() {
    if (writer.joinable()) writer.join();
  }
  std::vector<std::string> payloads;
  std::string expected;  // every response, in order
  std::thread writer;
  absl::Status write_status;
};

void StartFlood(TestClient& client, int frames, Flood* flood) {
  std::mt19937_64 rng(42);
  std::string stream;
  for (int i = 0; i < frames; ++i) {
    flood->payloads.push_back(RandomBytes(rng, kMaxPayload));
    stream += Frame(flood->payloads.back());
    flood->expected += ReversedFrame(flood->payloads.back());
  }
  flood->writer = std::thread(
      [&client, flood, stream = std::move(stream)] { flood->write_status = client.WriteAll(stream, Deadline()); });
}

TEST_P(StateMachineTest, CloseConnectionGracefulDeliversPendingResponsesThenEof) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  const int fd = info.fd;
  Flood flood;
  StartFlood(client, 100, &flood);
  // Paused: more than the high-water mark queued behind a client that does
  // not read.
  const size_t high_water = gw_->options().reactor.high_water;
  ConnectionInfo paused;
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(fd);
    if (!now.ok()) return false;
    paused = *now;
    return now->need_write >= high_water;
  }));
  EXPECT_EQ(paused.state, ConnectionState::kWrite);
  EXPECT_GT(paused.frames_in, paused.frames_out);
  ASSERT_OK(gw_->CloseConnection(fd, /*id=*/0, CloseMode::kFlush));
  absl::StatusOr<std::string> received = client.ReadUntilEof(Deadline(), 64 << 20);
  flood.writer.join();
  // The server drops (not answers) what it had not read when asked to close,
  // so the writer may or may not have got everything out.
  ASSERT_OK(received);
  client.Close();

  // Whole responses to the first k frames, byte for byte, and nothing else.
  ASSERT_GT(received->size(), 0u);
  ASSERT_LE(received->size(), flood.expected.size());
  ASSERT_EQ(received->size() % kMaxFrameSize, 0u) << "a response was cut";
  const size_t k = received->size() / kMaxFrameSize;
  EXPECT_LT(k, flood.payloads.size());
  EXPECT_TRUE(*received == flood.expected.substr(0, received->size())) << "response bytes differ";

  const std::vector<ConnectionEvent> events = ClosedEvents(peer);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(RecordingObserver::Describe(events).back(), "closed:control_plane");
  EXPECT_EQ(RecordingObserver::Describe(events)[events.size() - 2], "closing");
  const ConnectionInfo& last = events.back().connection;
  EXPECT_EQ(last.frames_in, k);
  EXPECT_EQ(last.frames_out, k);
  EXPECT_EQ(last.bytes_out, received->size());
  EXPECT_EQ(last.need_write, 0u);
}

TEST_P(StateMachineTest, CloseConnectionForceWithPendingOutput) {
  StartGateway();
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  Flood flood;
  StartFlood(client, 100, &flood);
  const size_t high_water = gw_->options().reactor.high_water;
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info.fd);
    return now.ok() && now->need_write >= high_water;
  }));
  ASSERT_OK(gw_->CloseConnection(info.fd, /*id=*/0, CloseMode::kForce));
  // Closed at once with unread input: the client sees its data end, by EOF
  // or by a reset; whatever arrived is an exact prefix of the responses.
  std::string received;
  absl::StatusOr<std::string> rest = client.ReadUntilEof(Deadline());
  flood.writer.join();
  if (rest.ok()) received = *rest;
  EXPECT_TRUE(rest.ok() || absl::IsUnavailable(rest.status())) << rest.status();
  EXPECT_TRUE(received == flood.expected.substr(0, received.size()));
  const std::vector<ConnectionEvent> events = ClosedEvents(peer);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(RecordingObserver::Describe(events).back(), "closed:control_plane");
  EXPECT_GT(events.back().connection.need_write, 0u);  // dropped, as asked
}

TEST_P(StateMachineTest, CountersWhileAFrameIsHalfSent) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  const int fd = info.fd;
  EXPECT_EQ(info.peer, client.peer_name());
  EXPECT_EQ(info.io_model, GetParam().model);
  if (GetParam().model == IoModel::kEpoll) EXPECT_EQ(info.trigger_mode, GetParam().mode);
  EXPECT_EQ(info.reactor, 0);
  EXPECT_EQ(info.state, ConnectionState::kRead);
  EXPECT_EQ(info.have_read, 0u);
  EXPECT_EQ(info.need_read, kHeaderSize);
  EXPECT_LE(info.opened_at, info.last_active_at);
  EXPECT_LE(info.opened_at, absl::Now());

  auto wait_for = [&](auto predicate) {
    ConnectionInfo got;
    EXPECT_TRUE(WaitUntil([&] {
      absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(fd);
      if (!now.ok()) return false;
      got = *now;
      return predicate(got);
    }));
    return got;
  };

  // Three header bytes: two more needed for the header.
  ASSERT_OK(client.WriteAll("000"));
  ConnectionInfo now = wait_for([](const ConnectionInfo& i) { return i.bytes_in == 3; });
  EXPECT_EQ(now.have_read, 3u);
  EXPECT_EQ(now.need_read, 2u);
  EXPECT_EQ(now.state, ConnectionState::kRead);

  // Header plus three of ten payload bytes.
  ASSERT_OK(client.WriteAll("10abc"));
  now = wait_for([](const ConnectionInfo& i) { return i.bytes_in == 8; });
  EXPECT_EQ(now.have_read, 8u);
  EXPECT_EQ(now.need_read, 7u);
  EXPECT_EQ(now.frames_in, 0u);
  EXPECT_EQ(now.bytes_out, 0u);
  EXPECT_EQ(now.have_write, 0u);
  EXPECT_EQ(now.need_write, 0u);

  // The rest: one response, and the counters start over.
  ASSERT_OK(client.WriteAll("defghij"));
  ASSERT_OK_AND_ASSIGN(std::string reply, client.ReadFrame());
  EXPECT_EQ(reply, "jihgfedcba");
  now = wait_for([](const ConnectionInfo& i) { return i.frames_out == 1; });
  EXPECT_EQ(now.have_read, 0u);
  EXPECT_EQ(now.need_read, kHeaderSize);
  EXPECT_EQ(now.bytes_in, 15u);
  EXPECT_EQ(now.bytes_out, 15u);
  EXPECT_EQ(now.frames_in, 1u);
  EXPECT_EQ(now.frames_out, 1u);
  EXPECT_EQ(now.have_write, 0u);
  EXPECT_EQ(now.need_write, 0u);
  EXPECT_EQ(now.state, ConnectionState::kRead);
  EXPECT_LE(info.last_active_at, now.last_active_at);

  // A second frame pipelined with half of a third.
  ASSERT_OK(client.WriteAll(Frame("xy") + "00004p"));
  ASSERT_OK_AND_ASSIGN(reply, client.ReadFrame());
  EXPECT_EQ(reply, "yx");
  now = wait_for([](const ConnectionInfo& i) { return i.bytes_in == 28; });
  EXPECT_EQ(now.have_read, 6u);
  EXPECT_EQ(now.need_read, 3u);
  EXPECT_EQ(now.frames_in, 2u);
  EXPECT_EQ(now.frames_out, 2u);
  EXPECT_EQ(now.bytes_out, 22u);
}

TEST_P(StateMachineTest, CountersWhileOutputIsQueued) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  Flood flood;
  StartFlood(client, 60, &flood);
  const size_t high_water = gw_->options().reactor.high_water;
  ConnectionInfo paused;
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info.fd);
    if (!now.ok()) return false;
    paused = *now;
    return now->need_write >= high_water;
  }));
  // Every response produced is either written or queued.
  EXPECT_EQ(paused.bytes_out + paused.need_write, paused.frames_in * kMaxFrameSize);
  EXPECT_EQ(paused.state, ConnectionState::kWrite);
  ASSERT_OK_AND_ASSIGN(const std::string all, client.ReadExactly(flood.expected.size()));
  EXPECT_TRUE(all == flood.expected);
  flood.writer.join();
  EXPECT_TRUE(flood.write_status.ok()) << flood.write_status;
  ConnectionInfo done;
  ASSERT_TRUE(WaitUntil([&] {
    absl::StatusOr<ConnectionInfo> now = gw_->GetConnection(info.fd);
    if (!now.ok()) return false;
    done = *now;
    return now->frames_out == 60;
  }));
  EXPECT_EQ(done.frames_in, 60u);
  EXPECT_EQ(done.bytes_in, 60 * kMaxFrameSize);
  EXPECT_EQ(done.bytes_out, 60 * kMaxFrameSize);
  EXPECT_EQ(done.need_write, 0u);
  EXPECT_EQ(done.have_write, 0u);
  EXPECT_EQ(done.state, ConnectionState::kRead);
}

TEST_P(StateMachineTest, ObserverWithoutStateChangesSeesOpenAndCloseOnly) {
  StartGateway();
  auto quiet = std::make_shared<RecordingObserver>(/*wants_state_changes=*/false);
  ASSERT_OK(gw_->AddObserver(quiet));
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_OK(client.RoundTrip("hello"));
  client.Close();
  ClosedEvents(peer);  // the full observer saw it close
  std::vector<ConnectionEvent> events = quiet->WaitForClosed(peer, Deadline());
  EXPECT_THAT(RecordingObserver::Describe(events), ElementsAre("opened:accept", "closed:peer_closed"));
  gw_->RemoveObserver(quiet.get());
  TestClient second = Connect();
  const std::string second_peer = second.peer_name();
  ASSERT_OK(second.RoundTrip("x"));
  second.Close();
  ClosedEvents(second_peer);
  EXPECT_TRUE(quiet->EventsFor(second_peer).empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, StateMachineTest, ::testing::ValuesIn(ReactorBackends()), BackendName());

}  // namespace
}  // namespace gateway::testing
