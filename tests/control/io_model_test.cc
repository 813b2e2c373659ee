// GetIoModel and SetIoModel through a real gRPC channel against a real
// in-process gateway: the default model, every refusal and its status, the
// no-op switch, and a live switch to poll and back as every RPC, the watch
// streams and GetStats see it. Tests that need a second back-end skip when it
// is not built in (the gateway answers UNIMPLEMENTED).
#include <algorithm>
#include <string>
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

bool IsSwitch(const v1::ConnectionEvent& e) { return e.type() == v1::ConnectionEvent::TYPE_IO_MODEL_SWITCHED; }

std::vector<v1::ConnectionEvent> Switches(const std::vector<v1::ConnectionEvent>& events) {
  std::vector<v1::ConnectionEvent> out;
  std::copy_if(events.begin(), events.end(), std::back_inserter(out), IsSwitch);
  return out;
}

bool HasOpened(const std::vector<v1::ConnectionEvent>& events, const std::string& peer) {
  return std::any_of(events.begin(), events.end(), [&](const v1::ConnectionEvent& e) {
    return e.type() == v1::ConnectionEvent::TYPE_OPENED && e.connection().peer() == peer;
  });
}

class IoModelTest : public ControlFixture {
 protected:
  grpc::Status GetIoModel(v1::IoModelStatus* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub_->GetIoModel(&context, v1::GetIoModelRequest(), out);
  }

  grpc::Status SetIoModel(v1::IoModel model, v1::IoModelStatus* out = nullptr) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::SetIoModelRequest request;
    request.set_model(model);
    v1::IoModelStatus ignored;
    return stub_->SetIoModel(&context, request, out != nullptr ? out : &ignored);
  }

  v1::IoModel CurrentModel() {
    v1::IoModelStatus status;
    EXPECT_TRUE(GetIoModel(&status).ok());
    return status.model();
  }

  // A round trip on `client` still works, byte for byte.
  void ExpectServes(TestClient& client, const std::string& payload) {
    absl::StatusOr<std::string> reply = client.RoundTrip(payload);
    ASSERT_TRUE(reply.ok()) << reply.status();
    EXPECT_EQ(*reply, std::string(payload.rbegin(), payload.rend()));
  }
};

TEST_F(IoModelTest, ReportsEpollByDefault) {
  Start(TwoReactors());
  v1::IoModelStatus status;
  ASSERT_TRUE(GetIoModel(&status).ok());
  EXPECT_EQ(status.model(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(status.switches(), 0u);
  EXPECT_EQ(status.last_switch_duration().seconds(), 0);
  EXPECT_EQ(status.last_switch_duration().nanos(), 0);
  // The current model is always one a switch may go to; the start-time-only
  // ones never are.
  const auto& available = status.available();
  EXPECT_NE(std::find(available.begin(), available.end(), v1::IO_MODEL_EPOLL), available.end());
  EXPECT_EQ(std::find(available.begin(), available.end(), v1::IO_MODEL_BLOCKING), available.end());
  EXPECT_EQ(std::find(available.begin(), available.end(), v1::IO_MODEL_SIGNAL), available.end());

  v1::Stats stats;
  ASSERT_TRUE(Stats(&stats).ok());
  EXPECT_EQ(stats.io_model(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(stats.io_model_switches(), 0u);
}

TEST_F(IoModelTest, ConnectionsReportTheirModel) {
  Start(TwoReactors());
  TestClient client = Connect();
  const int fd = FdOf(client);
  v1::Connection connection;
  ASSERT_TRUE(GetConnection(fd, &connection).ok());
  EXPECT_EQ(connection.io_model(), v1::IO_MODEL_EPOLL);
  v1::ListConnectionsResponse list;
  ASSERT_TRUE(List(v1::ListConnectionsRequest(), &list).ok());
  ASSERT_EQ(list.connections_size(), 1);
  EXPECT_EQ(list.connections(0).io_model(), v1::IO_MODEL_EPOLL);
}

TEST_F(IoModelTest, RejectsUnspecifiedAndUnknownModels) {
  Start(TwoReactors());
  for (int model : {0, 7, -1, 1000}) {
    const grpc::Status status = SetIoModel(static_cast<v1::IoModel>(model));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << model;
    EXPECT_NE(status.error_message().find("IO_MODEL_EPOLL"), std::string::npos) << status.error_message();
  }
  EXPECT_EQ(CurrentModel(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(gw_->io_model_switches(), 0u);
}

TEST_F(IoModelTest, RefusesStartTimeOnlyModelsNamingThem) {
  Start(TwoReactors());
  TestClient client = Connect();
  for (const auto& [model, name] : {std::pair{v1::IO_MODEL_BLOCKING, "blocking"}, {v1::IO_MODEL_SIGNAL, "signal"}}) {
    const grpc::Status status = SetIoModel(model);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << name;
    EXPECT_NE(status.error_message().find(name), std::string::npos) << status.error_message();
  }
  // Refusals leave everything as it was.
  v1::IoModelStatus status;
  ASSERT_TRUE(GetIoModel(&status).ok());
  EXPECT_EQ(status.model(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(status.switches(), 0u);
  ExpectServes(client, "still served");
}

TEST_F(IoModelTest, SettingTheCurrentModelIsANoOp) {
  Start(TwoReactors());
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest());
  v1::IoModelStatus status;
  ASSERT_TRUE(SetIoModel(v1::IO_MODEL_EPOLL, &status).ok());
  EXPECT_EQ(status.model(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(status.switches(), 0u);
  // A switch event would have been queued before SetIoModel answered, so
  // before this connection's opening: none came.
  TestClient client = Connect();
  const std::string peer = client.peer_name();
  ASSERT_TRUE(watch.WaitFor([&](const auto& e) { return HasOpened(e, peer); }, Deadline()));
  EXPECT_TRUE(Switches(watch.events()).empty());
}

// Every live-switchable model GetIoModel lists as available can be set; the
// others are refused and leave the model in place. On a build with only
// epoll this checks the refusals (UNIMPLEMENTED passes through as is).
TEST_F(IoModelTest, AvailableModelsSwitchAndOthersAreRefused) {
  Start(TwoReactors());
  TestClient client = Connect();
  v1::IoModelStatus initial;
  ASSERT_TRUE(GetIoModel(&initial).ok());
  uint64_t switches = 0;
  v1::IoModel current = v1::IO_MODEL_EPOLL;
  for (v1::IoModel model : {v1::IO_MODEL_SELECT, v1::IO_MODEL_POLL, v1::IO_MODEL_IO_URING, v1::IO_MODEL_EPOLL}) {
    const auto& available = initial.available();
    const bool is_available = std::find(available.begin(), available.end(), model) != available.end();
    v1::IoModelStatus status;
    const grpc::Status result = SetIoModel(model, &status);
    if (is_available) {
      ASSERT_TRUE(result.ok()) << v1::IoModel_Name(model) << ": " << result.error_message();
      if (model != current) ++switches;
      current = model;
      EXPECT_EQ(status.model(), model);
      EXPECT_EQ(status.switches(), switches);
    } else {
      EXPECT_FALSE(result.ok()) << v1::IoModel_Name(model);
      EXPECT_NE(result.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << v1::IoModel_Name(model);
      EXPECT_FALSE(result.error_message().empty());
    }
    EXPECT_EQ(CurrentModel(), current) << v1::IoModel_Name(model);
    ExpectServes(client, absl::StrCat("after ", v1::IoModel_Name(model)));
  }
  EXPECT_EQ(gw_->io_model_switches(), switches);
}

// Needs the poll back-end: skipped where it is not built in.
TEST_F(IoModelTest, SwitchesToPollAndBackLive) {
  Start(TwoReactors());
  WatchReader watch(stub_.get(), v1::WatchConnectionsRequest());
  WatchReader second_watch(stub_.get(), v1::WatchConnectionsRequest());
  TestClient client = Connect();
  const int fd = FdOf(client);
  ExpectServes(client, "before");

  v1::IoModelStatus status;
  const grpc::Status to_poll = SetIoModel(v1::IO_MODEL_POLL, &status);
  if (to_poll.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    GTEST_SKIP() << "no poll back-end in this build: " << to_poll.error_message();
  }
  ASSERT_TRUE(to_poll.ok()) << to_poll.error_message();
  EXPECT_EQ(status.model(), v1::IO_MODEL_POLL);
  EXPECT_EQ(status.switches(), 1u);
  const int64_t duration_ns =
      int64_t{status.last_switch_duration().seconds()} * 1000000000 + status.last_switch_duration().nanos();
  EXPECT_GT(duration_ns, 0);
  EXPECT_EQ(duration_ns, absl::ToInt64Nanoseconds(gw_->last_io_model_switch_duration()));

  // Every view agrees, and the live connection moved with the reactors.
  EXPECT_EQ(CurrentModel(), v1::IO_MODEL_POLL);
  v1::Stats stats;
  ASSERT_TRUE(Stats(&stats).ok());
  EXPECT_EQ(stats.io_model(), v1::IO_MODEL_POLL);
  EXPECT_EQ(stats.io_model_switches(), 1u);
  v1::Connection connection;
  ASSERT_TRUE(GetConnection(fd, &connection).ok());
  EXPECT_EQ(connection.io_model(), v1::IO_MODEL_POLL);
  v1::ListConnectionsResponse list;
  ASSERT_TRUE(List(v1::ListConnectionsRequest(), &list).ok());
  ASSERT_EQ(list.connections_size(), 1);
  EXPECT_EQ(list.connections(0).io_model(), v1::IO_MODEL_POLL);
  ExpectServes(client, "on poll");

  // Both watchers see the switch, with the models and the gateway's duration.
  for (WatchReader* w : {&watch, &second_watch}) {
    ASSERT_TRUE(w->WaitFor([](const auto& e) { return Switches(e).size() == 1; }, Deadline()));
    const v1::ConnectionEvent event = Switches(w->events()).front();
    EXPECT_EQ(event.io_model_switch().old_model(), v1::IO_MODEL_EPOLL);
    EXPECT_EQ(event.io_model_switch().new_model(), v1::IO_MODEL_POLL);
    EXPECT_EQ(
        int64_t{event.io_model_switch().duration().seconds()} * 1000000000 + event.io_model_switch().duration().nanos(),
        duration_ns);
    EXPECT_GT(event.time().seconds(), 0);
    EXPECT_FALSE(event.has_connection());
  }

  // The trigger mode is epoll's: refused, naming the model in use.
  const grpc::Status trigger = SetMode(v1::TRIGGER_MODE_LEVEL);
  EXPECT_EQ(trigger.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(trigger.error_message().find("poll"), std::string::npos) << trigger.error_message();

  ASSERT_TRUE(SetIoModel(v1::IO_MODEL_EPOLL, &status).ok());
  EXPECT_EQ(status.model(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(status.switches(), 2u);
  ASSERT_TRUE(watch.WaitFor([](const auto& e) { return Switches(e).size() == 2; }, Deadline()));
  const v1::ConnectionEvent back = Switches(watch.events()).back();
  EXPECT_EQ(back.io_model_switch().old_model(), v1::IO_MODEL_POLL);
  EXPECT_EQ(back.io_model_switch().new_model(), v1::IO_MODEL_EPOLL);
  ASSERT_TRUE(SetMode(v1::TRIGGER_MODE_LEVEL).ok());
  ASSERT_TRUE(GetConnection(fd, &connection).ok());
  EXPECT_EQ(connection.io_model(), v1::IO_MODEL_EPOLL);
  EXPECT_EQ(connection.trigger_mode(), v1::TRIGGER_MODE_LEVEL);
  ExpectServes(client, "back on epoll");
}

}  // namespace
}  // namespace gateway::control::testing
