// The upstream-mode RPCs of GatewayControl through a real gRPC channel: a
// gateway in upstream mode in front of in-process backend gateways (and a
// backend that never answers), every RPC's statuses in and out of upstream
// mode, the happy paths with their exact pictures, WatchBackends' events,
// the timeouts a drain derives from the call, Connection.upstream_inflight
// and the upstream_error close count.
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/control/control_fixture.h"
#include "tests/control/watch_reader.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::control::testing {
namespace {

std::string Address(int port) { return absl::StrCat("127.0.0.1:", port); }

// A backend that accepts and reads but never answers: its requests stay in
// flight.
class SilentBackend {
 public:
  SilentBackend() {
    auto listening = ListenOnLoopback();
    EXPECT_TRUE(listening.ok()) << listening.status();
    socket_ = *std::move(listening);
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = accept(socket_.fd(), nullptr, nullptr);
        if (fd < 0) return;
        accepted_.push_back(fd);
      }
    });
  }
  ~SilentBackend() {
    shutdown(socket_.fd(), SHUT_RDWR);
    thread_.join();
    for (int fd : accepted_) close(fd);
  }
  int port() const { return socket_.port(); }

 private:
  LoopbackSocket socket_;
  std::thread thread_;
  std::vector<int> accepted_;  // touched by the thread only until the join
};

class BackendControlTest : public ControlFixture {
 protected:
  // A backend gateway in its default (reversing) mode; returns its address.
  std::string StartBackend() {
    GatewayOptions options;
    options.reactors = 1;
    auto backend = StartTestGateway(options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    if (!backend.ok()) return "";
    backends_.push_back(*std::move(backend));
    return Address(backends_.back()->port());
  }

  // The gateway under test in upstream mode, in front of `addresses`
  // (probes off: the tests drive the states).
  void StartProxy(const std::vector<std::string>& addresses, UpstreamOptions upstream = {}, int reactors = 2) {
    GatewayOptions options;
    options.reactors = reactors;
    for (const std::string& address : addresses) upstream.backends.push_back(BackendSpec{address, 1});
    upstream.probe_interval = absl::ZeroDuration();
    options.upstream = upstream;
    Start(options);
  }

  void TearDown() override {
    ControlFixture::TearDown();
    for (auto& backend : backends_) backend->Shutdown(absl::Seconds(5));
  }

  grpc::Status ListBackends(v1::ListBackendsResponse* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub_->ListBackends(&context, v1::ListBackendsRequest(), out);
  }
  grpc::Status GetBackend(const std::string& address, v1::Backend* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::GetBackendRequest request;
    request.set_address(address);
    return stub_->GetBackend(&context, request, out);
  }
  grpc::Status AddBackend(const std::string& address, uint32_t weight, v1::Backend* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::AddBackendRequest request;
    request.set_address(address);
    request.set_weight(weight);
    return stub_->AddBackend(&context, request, out);
  }
  // `timeout` < 0: none in the request.
  grpc::Status RemoveBackend(const std::string& address, absl::Duration timeout, v1::Backend* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::RemoveBackendRequest request;
    request.set_address(address);
    if (timeout >= absl::ZeroDuration()) ToProto(timeout, request.mutable_timeout());
    return stub_->RemoveBackend(&context, request, out);
  }
  grpc::Status DrainBackend(const std::string& address, absl::Duration timeout, v1::Backend* out,
                            absl::Duration deadline = kRpcTimeout) {
    grpc::ClientContext context;
    SetDeadline(&context, deadline);
    v1::DrainBackendRequest request;
    request.set_address(address);
    if (timeout >= absl::ZeroDuration()) ToProto(timeout, request.mutable_timeout());
    return stub_->DrainBackend(&context, request, out);
  }
  grpc::Status UndrainBackend(const std::string& address, v1::Backend* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::UndrainBackendRequest request;
    request.set_address(address);
    return stub_->UndrainBackend(&context, request, out);
  }
  grpc::Status SetWeight(const std::string& address, uint32_t weight, v1::Backend* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::SetBackendWeightRequest request;
    request.set_address(address);
    request.set_weight(weight);
    return stub_->SetBackendWeight(&context, request, out);
  }

  void ExpectEmptyAddressRefused() {
    v1::Backend backend;
    EXPECT_EQ(GetBackend("", &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(AddBackend("", 1, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(RemoveBackend("", absl::Seconds(1), &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(DrainBackend("", absl::Seconds(1), &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(UndrainBackend("", &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(SetWeight("", 2, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }

  static void ToProto(absl::Duration d, google::protobuf::Duration* out) {
    const int64_t seconds = absl::ToInt64Seconds(d);
    out->set_seconds(seconds);
    out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d - absl::Seconds(seconds))));
  }

  std::vector<std::unique_ptr<Gateway>> backends_;
};

constexpr absl::Duration kNoTimeout = absl::Seconds(-1);

TEST_F(BackendControlTest, EveryBackendCallIsFailedPreconditionOutsideUpstreamMode) {
  Start();
  v1::Backend backend;
  v1::ListBackendsResponse list;
  const std::string address = "127.0.0.1:7000";
  EXPECT_EQ(ListBackends(&list).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(GetBackend(address, &backend).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(AddBackend(address, 1, &backend).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(RemoveBackend(address, kNoTimeout, &backend).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(DrainBackend(address, kNoTimeout, &backend).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(UndrainBackend(address, &backend).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const grpc::Status weight = SetWeight(address, 2, &backend);
  EXPECT_EQ(weight.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(absl::StrContains(weight.error_message(), "--upstream")) << weight.error_message();

  BackendWatchReader watch(stub_.get());
  EXPECT_EQ(watch.WaitForEnd(Deadline()).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(BackendControlTest, AnEmptyAddressIsInvalidArgumentOutsideUpstreamMode) {
  Start();
  ExpectEmptyAddressRefused();
}

TEST_F(BackendControlTest, AnEmptyAddressIsInvalidArgumentInUpstreamMode) {
  StartProxy({StartBackend()});
  ExpectEmptyAddressRefused();
}

TEST_F(BackendControlTest, ListAndGetShowTheConfiguredBackends) {
  const std::string a = StartBackend();
  const std::string b = StartBackend();
  StartProxy({b, a});
  v1::ListBackendsResponse list;
  ASSERT_TRUE(ListBackends(&list).ok());
  ASSERT_EQ(list.backends_size(), 2);
  // Sorted by address.
  EXPECT_EQ(list.backends(0).address(), std::min(a, b));
  EXPECT_EQ(list.backends(1).address(), std::max(a, b));
  for (const v1::Backend& backend : list.backends()) {
    EXPECT_EQ(backend.state(), v1::BACKEND_STATE_HEALTHY);
    EXPECT_EQ(backend.weight(), 1u);
    EXPECT_EQ(backend.requests(), 0u);
    EXPECT_EQ(backend.latency().count(), 0u);
    EXPECT_EQ(backend.latency().buckets_size(), static_cast<int>(kUpstreamDurationBounds.size() + 1));
    EXPECT_GT(backend.added_at().seconds(), 0);
  }
  v1::Backend backend;
  ASSERT_TRUE(GetBackend(a, &backend).ok());
  EXPECT_EQ(backend.address(), a);
  EXPECT_EQ(GetBackend("127.0.0.1:1", &backend).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BackendControlTest, ARoundTripShowsInTheBackendsCounters) {
  const std::string address = StartBackend();
  StartProxy({address}, {}, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip("through"));
  EXPECT_EQ(response, "hguorht");
  v1::Backend backend;
  ASSERT_TRUE(GetBackend(address, &backend).ok());
  EXPECT_EQ(backend.requests(), 1u);
  EXPECT_EQ(backend.responses(), 1u);
  EXPECT_EQ(backend.inflight(), 0u);
  EXPECT_EQ(backend.errors().timeout() + backend.errors().reset() + backend.errors().connect() +
                backend.errors().protocol() + backend.errors().no_backend() + backend.errors().overload(),
            0u);
  EXPECT_EQ(backend.latency().count(), 1u);
  uint64_t bucketed = 0;
  for (const auto& bucket : backend.latency().buckets()) bucketed += bucket.count();
  EXPECT_EQ(bucketed, 1u);
  EXPECT_EQ(backend.latency().buckets().rbegin()->upper_bound_seconds(), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(backend.latency().has_mean());
  EXPECT_LE(backend.latency().p50().seconds() * 1e9 + backend.latency().p50().nanos(),
            backend.latency().p99().seconds() * 1e9 + backend.latency().p99().nanos());
}

TEST_F(BackendControlTest, AddBackendAnswersItsPictureAndClearStatuses) {
  const std::string first = StartBackend();
  const std::string second = StartBackend();
  StartProxy({first});
  v1::Backend backend;
  ASSERT_TRUE(AddBackend(second, 5, &backend).ok());
  EXPECT_EQ(backend.address(), second);
  EXPECT_EQ(backend.weight(), 5u);
  EXPECT_EQ(backend.state(), v1::BACKEND_STATE_HEALTHY);
  v1::ListBackendsResponse list;
  ASSERT_TRUE(ListBackends(&list).ok());
  EXPECT_EQ(list.backends_size(), 2);

  EXPECT_EQ(AddBackend(second, 1, &backend).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(AddBackend("nonsense", 1, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(AddBackend("127.0.0.1:70000", 1, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(AddBackend("127.0.0.1:9=2", 1, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(AddBackend("127.0.0.1:9", 1001, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Weight 0 is the default, 1.
  ASSERT_TRUE(AddBackend("127.0.0.1:9", 0, &backend).ok());
  EXPECT_EQ(backend.weight(), 1u);
}

TEST_F(BackendControlTest, SetBackendWeight) {
  const std::string address = StartBackend();
  StartProxy({address});
  v1::Backend backend;
  ASSERT_TRUE(SetWeight(address, 7, &backend).ok());
  EXPECT_EQ(backend.weight(), 7u);
  ASSERT_TRUE(GetBackend(address, &backend).ok());
  EXPECT_EQ(backend.weight(), 7u);
  EXPECT_EQ(SetWeight(address, 0, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SetWeight(address, 1001, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(SetWeight("127.0.0.1:1", 2, &backend).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BackendControlTest, DrainMovesTrafficAwayAndUndrainBringsItBack) {
  const std::string a = StartBackend();
  const std::string b = StartBackend();
  StartProxy({a, b}, {}, /*reactors=*/1);
  v1::Backend backend;
  ASSERT_TRUE(DrainBackend(b, kNoTimeout, &backend).ok());
  EXPECT_EQ(backend.state(), v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(backend.inflight(), 0u);
  TestClient client = Connect();
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip(absl::StrCat("d", i)));
    EXPECT_EQ(response, absl::StrCat(i, "d"));
  }
  ASSERT_TRUE(GetBackend(b, &backend).ok());
  EXPECT_EQ(backend.requests(), 0u);
  ASSERT_TRUE(GetBackend(a, &backend).ok());
  EXPECT_EQ(backend.requests(), 10u);

  ASSERT_TRUE(UndrainBackend(b, &backend).ok());
  EXPECT_EQ(backend.state(), v1::BACKEND_STATE_HEALTHY);
  for (int i = 0; i < 10; ++i) ASSERT_OK(client.RoundTrip("u"));
  ASSERT_TRUE(GetBackend(b, &backend).ok());
  const uint64_t to_b = backend.requests();
  EXPECT_GT(to_b, 0u);
  ASSERT_TRUE(GetBackend(a, &backend).ok());
  EXPECT_EQ(backend.requests() + to_b, 20u);

  EXPECT_EQ(DrainBackend("127.0.0.1:1", kNoTimeout, &backend).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(UndrainBackend("127.0.0.1:1", &backend).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(BackendControlTest, BadTimeoutsAreInvalidArgument) {
  const std::string address = StartBackend();
  StartProxy({address});
  v1::Backend backend;
  for (absl::Duration timeout : {absl::Hours(2)}) {
    EXPECT_EQ(DrainBackend(address, timeout, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(RemoveBackend(address, timeout, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::DrainBackendRequest request;
  request.set_address(address);
  request.mutable_timeout()->set_seconds(-1);
  EXPECT_EQ(stub_->DrainBackend(&context, request, &backend).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Nothing was changed by the refusals.
  ASSERT_TRUE(GetBackend(address, &backend).ok());
  EXPECT_EQ(backend.state(), v1::BACKEND_STATE_HEALTHY);
}

TEST_F(BackendControlTest, DrainWithRequestsInFlightEndsAtItsTimeoutAndStaysDraining) {
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Seconds(60);
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("stuck")));
  v1::Backend backend;
  ASSERT_TRUE(WaitUntil([&] { return GetBackend(Address(silent.port()), &backend).ok() && backend.inflight() == 1; }));
  const grpc::Status drained = DrainBackend(Address(silent.port()), absl::Milliseconds(200), &backend);
  EXPECT_EQ(drained.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(absl::StrContains(drained.error_message(), "in flight")) << drained.error_message();
  ASSERT_TRUE(GetBackend(Address(silent.port()), &backend).ok());
  EXPECT_EQ(backend.state(), v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(backend.inflight(), 1u);
}

TEST_F(BackendControlTest, DrainWithoutATimeoutAnswersBeforeTheCallsDeadline) {
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Seconds(60);
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("stuck")));
  v1::Backend backend;
  ASSERT_TRUE(WaitUntil([&] { return GetBackend(Address(silent.port()), &backend).ok() && backend.inflight() == 1; }));
  // The gateway's own answer (its message), a tenth of the deadline early,
  // not the client library's DEADLINE_EXCEEDED.
  const grpc::Status drained = DrainBackend(Address(silent.port()), kNoTimeout, &backend, absl::Seconds(5));
  EXPECT_EQ(drained.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(absl::StrContains(drained.error_message(), "in flight")) << drained.error_message();
}

TEST_F(BackendControlTest, RemoveBackendAnswersItsLastPictureAndForgetsIt) {
  const std::string a = StartBackend();
  const std::string b = StartBackend();
  StartProxy({a, b}, {}, /*reactors=*/1);
  TestClient client = Connect();
  for (int i = 0; i < 4; ++i) ASSERT_OK(client.RoundTrip("r"));
  v1::Backend backend;
  ASSERT_TRUE(RemoveBackend(b, kNoTimeout, &backend).ok());
  EXPECT_EQ(backend.address(), b);
  EXPECT_EQ(backend.requests(), 2u);
  EXPECT_EQ(backend.responses(), 2u);
  EXPECT_EQ(GetBackend(b, &backend).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(RemoveBackend(b, kNoTimeout, &backend).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListBackendsResponse list;
  ASSERT_TRUE(ListBackends(&list).ok());
  ASSERT_EQ(list.backends_size(), 1);
  EXPECT_EQ(list.backends(0).address(), a);
  // Everything now goes to the one left.
  for (int i = 0; i < 4; ++i) ASSERT_OK(client.RoundTrip("r"));
  ASSERT_TRUE(GetBackend(a, &backend).ok());
  EXPECT_EQ(backend.requests(), 6u);
}

TEST_F(BackendControlTest, RemoveWithZeroTimeoutGivesWhatWasInFlightTheErrorFrame) {
  SilentBackend silent;
  const std::string good = StartBackend();
  UpstreamOptions upstream;
  upstream.timeout = absl::Seconds(60);
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("stuck")));
  v1::Backend backend;
  ASSERT_TRUE(WaitUntil([&] { return GetBackend(Address(silent.port()), &backend).ok() && backend.inflight() == 1; }));
  ASSERT_TRUE(AddBackend(good, 1, &backend).ok());
  ASSERT_TRUE(RemoveBackend(Address(silent.port()), absl::ZeroDuration(), &backend).ok());
  EXPECT_EQ(backend.address(), Address(silent.port()));
  ASSERT_OK_AND_ASSIGN(std::string error, client.ReadFrame());
  EXPECT_EQ(error, "");  // the error response, in the request's place
  ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip("next"));
  EXPECT_EQ(response, "txen");
}

TEST_F(BackendControlTest, WatchBackendsStreamsEveryChange) {
  const std::string a = StartBackend();
  const std::string b = StartBackend();
  StartProxy({a});
  BackendWatchReader watch(stub_.get());
  v1::Backend backend;
  ASSERT_TRUE(AddBackend(b, 2, &backend).ok());
  ASSERT_TRUE(SetWeight(b, 3, &backend).ok());
  ASSERT_TRUE(DrainBackend(b, kNoTimeout, &backend).ok());
  ASSERT_TRUE(UndrainBackend(b, &backend).ok());
  ASSERT_TRUE(RemoveBackend(b, kNoTimeout, &backend).ok());
  // added, weight, draining, healthy again, draining for removal, removed.
  ASSERT_TRUE(watch.WaitFor([](const auto& events) { return events.size() >= 6; }, Deadline()));
  const std::vector<v1::BackendEvent> events = watch.events();
  ASSERT_EQ(events.size(), 6u);
  for (const v1::BackendEvent& event : events) {
    EXPECT_EQ(event.backend().address(), b);
    EXPECT_EQ(event.dropped(), 0u);
    EXPECT_GT(event.time().seconds(), 0);
    EXPECT_FALSE(event.reason().empty());
  }
  EXPECT_EQ(events[0].type(), v1::BackendEvent::TYPE_ADDED);
  EXPECT_EQ(events[0].backend().weight(), 2u);
  EXPECT_EQ(events[1].type(), v1::BackendEvent::TYPE_WEIGHT_CHANGED);
  EXPECT_EQ(events[1].backend().weight(), 3u);
  EXPECT_EQ(events[2].type(), v1::BackendEvent::TYPE_STATE_CHANGED);
  EXPECT_EQ(events[2].old_state(), v1::BACKEND_STATE_HEALTHY);
  EXPECT_EQ(events[2].backend().state(), v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(events[3].type(), v1::BackendEvent::TYPE_STATE_CHANGED);
  EXPECT_EQ(events[3].old_state(), v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(events[3].backend().state(), v1::BACKEND_STATE_HEALTHY);
  EXPECT_EQ(events[4].type(), v1::BackendEvent::TYPE_STATE_CHANGED);
  EXPECT_EQ(events[4].backend().state(), v1::BACKEND_STATE_DRAINING);
  EXPECT_EQ(events[5].type(), v1::BackendEvent::TYPE_REMOVED);

  // The server's shutdown ends the stream cleanly, and its slot is freed.
  server_->Shutdown(absl::Seconds(5));
  EXPECT_TRUE(watch.WaitForEnd(Deadline()).ok());
}

TEST_F(BackendControlTest, WatchBackendsCountsAgainstMaxWatchers) {
  const std::string a = StartBackend();
  GatewayOptions options;
  options.reactors = 1;
  options.upstream.backends.push_back(BackendSpec{a, 1});
  options.upstream.probe_interval = absl::ZeroDuration();
  ControlServerOptions control;
  control.max_watchers = 1;
  Start(options, control);
  auto first = std::make_unique<BackendWatchReader>(stub_.get());
  BackendWatchReader second(stub_.get());
  EXPECT_EQ(second.WaitForEnd(Deadline()).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A cancelled stream gives its slot back (once the server has seen the
  // cancel: the refused retries meanwhile end at once).
  first.reset();
  uint32_t weight = 1;
  EXPECT_TRUE(WaitUntil([&] {
    BackendWatchReader again(stub_.get());
    v1::Backend backend;
    if (!SetWeight(a, ++weight, &backend).ok()) return false;
    return again.WaitFor([](const auto& events) { return !events.empty(); }, Deadline());
  }));
}

TEST_F(BackendControlTest, ConnectionShowsItsRequestsInFlightUpstream) {
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Seconds(60);
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  const int fd = FdOf(client);
  ASSERT_OK(client.WriteAll(Frame("one") + Frame("two")));
  v1::Connection connection;
  EXPECT_TRUE(WaitUntil([&] { return GetConnection(fd, &connection).ok() && connection.upstream_inflight() == 2; }));
}

TEST_F(BackendControlTest, StatsCountUpstreamErrorCloses) {
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Milliseconds(200);
  upstream.error_mode = UpstreamErrorMode::kClose;
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("lost")));
  ASSERT_OK_AND_ASSIGN(std::string rest, client.ReadUntilEof());
  EXPECT_EQ(rest, "");
  client = TestClient();  // our FIN ends the gateway's linger
  v1::Stats stats;
  EXPECT_TRUE(WaitUntil([&] { return Stats(&stats).ok() && stats.totals().closed().upstream_error() == 1; }));
  EXPECT_EQ(stats.totals().closed_total(), 1u);
}

}  // namespace
}  // namespace gateway::control::testing
