// Control calls never block a gRPC thread: with one reactor deliberately
// stalled (Gateway::PostForTesting blocks its thread), the calls that need it
// end with DEADLINE_EXCEEDED at their deadline (or with their reply once it
// resumes, when they have no deadline), while the calls that do not need it
// (GetStats, GetTriggerMode, grpc.health) keep answering, and the server
// shuts down cleanly.
//
// gRPC 1.51 cannot bound the callback API's thread pool: ResourceQuota::
// SetMaxThreads bounds only the sync server's threads (grpc/grpc#31662, not
// merged, adds it for callbacks and names the callback pool's hard-coded
// limit of 16 threads). So instead of a small pool, every batch of calls here
// is three times that limit: were the stalled calls' handlers blocking, the
// calls answered meanwhile would find no thread to run on.

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "control/control_service.h"
#include "control/proto_convert.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "tests/control/control_fixture.h"
#include "tests/control/watch_reader.h"
#include "tests/support/reactor_stall.h"

namespace gateway::control::testing {
namespace {

using ::gateway::testing::Stall;
using ::gateway::testing::TestClient;
using ::gateway::testing::WaitUntil;

constexpr int kCallbackPoolLimit = 16;
constexpr int kBatch = 3 * kCallbackPoolLimit;
constexpr absl::Duration kShortDeadline = absl::Seconds(1);

// The statuses of calls started without waiting. Thread-safe. The
// callbacks share its state, so a call that ends after a failed test returned
// writes into live memory.
class Outcomes {
 public:
  // The completion callback of one more call.
  std::function<void(grpc::Status)> Expect() {
    {
      std::lock_guard<std::mutex> lock(state_->mu);
      ++state_->expected;
    }
    return [state = state_](grpc::Status status) {
      {
        std::lock_guard<std::mutex> lock(state->mu);
        state->statuses.push_back(std::move(status));
      }
      state->cv.notify_all();
    };
  }

  // Waits until every expected call has ended; false if not by `deadline`.
  bool WaitAll(absl::Time deadline) {
    std::unique_lock<std::mutex> lock(state_->mu);
    return state_->cv.wait_until(lock, absl::ToChronoTime(deadline),
                                 [&] { return state_->statuses.size() == state_->expected; });
  }

  size_t ended() {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->statuses.size();
  }

  // How many ended with `code`.
  int Count(grpc::StatusCode code) {
    std::lock_guard<std::mutex> lock(state_->mu);
    int n = 0;
    for (const grpc::Status& status : state_->statuses) n += status.error_code() == code ? 1 : 0;
    return n;
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    size_t expected = 0;                 // guarded by mu
    std::vector<grpc::Status> statuses;  // guarded by mu
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// One call's context, request and response, alive until the test ends.
template <typename Request, typename Response>
struct Call {
  grpc::ClientContext context;
  Request request;
  Response response;
};

class StalledReactorTest : public ControlFixture {
 protected:
  void TearDown() override {
    // A reactor still blocked would hold up the gateway's shutdown forever.
    if (stall_) stall_->Release();
    ControlFixture::TearDown();
  }

  // A new call kept until the test ends; `timeout` 0 = no deadline.
  template <typename Request, typename Response>
  Call<Request, Response>* NewCall(absl::Duration timeout) {
    auto call = std::make_shared<Call<Request, Response>>();
    if (timeout > absl::ZeroDuration()) SetDeadline(&call->context, timeout);
    calls_.push_back(call);
    return call.get();
  }

  void StartList(absl::Duration timeout, Outcomes& outcomes, v1::ListConnectionsResponse** response = nullptr) {
    auto* call = NewCall<v1::ListConnectionsRequest, v1::ListConnectionsResponse>(timeout);
    if (response != nullptr) *response = &call->response;
    stub_->async()->ListConnections(&call->context, &call->request, &call->response, outcomes.Expect());
  }

  void StartGet(int fd, absl::Duration timeout, Outcomes& outcomes, v1::Connection** response = nullptr) {
    auto* call = NewCall<v1::GetConnectionRequest, v1::Connection>(timeout);
    call->request.set_fd(fd);
    if (response != nullptr) *response = &call->response;
    stub_->async()->GetConnection(&call->context, &call->request, &call->response, outcomes.Expect());
  }

  void StartClose(int fd, absl::Duration timeout, Outcomes& outcomes) {
    auto* call = NewCall<v1::CloseConnectionRequest, v1::CloseConnectionResponse>(timeout);
    call->request.set_fd(fd);
    stub_->async()->CloseConnection(&call->context, &call->request, &call->response, outcomes.Expect());
  }

  void StartSetMode(v1::TriggerMode mode, absl::Duration timeout, Outcomes& outcomes) {
    auto* call = NewCall<v1::SetTriggerModeRequest, v1::TriggerModeStatus>(timeout);
    call->request.set_mode(mode);
    stub_->async()->SetTriggerMode(&call->context, &call->request, &call->response, outcomes.Expect());
  }

  // kBatch calls that need no reactor: GetStats, GetTriggerMode and
  // grpc.health.v1.Health/Check, a third each. Every one must answer OK;
  // the trigger mode must read `mode` with no switch made.
  void ExpectImmediateCallsAnswer(v1::TriggerMode mode) {
    Outcomes outcomes;
    std::vector<v1::TriggerModeStatus*> modes;
    std::vector<grpc::health::v1::HealthCheckResponse*> health;
    grpc::TemplatedGenericStub<grpc::health::v1::HealthCheckRequest, grpc::health::v1::HealthCheckResponse> health_stub(
        channel_);
    for (int i = 0; i < kBatch / 3; ++i) {
      auto* stats = NewCall<v1::GetStatsRequest, v1::Stats>(kRpcTimeout);
      stub_->async()->GetStats(&stats->context, &stats->request, &stats->response, outcomes.Expect());
      auto* get_mode = NewCall<v1::GetTriggerModeRequest, v1::TriggerModeStatus>(kRpcTimeout);
      modes.push_back(&get_mode->response);
      stub_->async()->GetTriggerMode(&get_mode->context, &get_mode->request, &get_mode->response, outcomes.Expect());
      auto* check = NewCall<grpc::health::v1::HealthCheckRequest, grpc::health::v1::HealthCheckResponse>(kRpcTimeout);
      health.push_back(&check->response);
      health_stub.UnaryCall(&check->context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &check->request,
                            &check->response, outcomes.Expect());
    }
    ASSERT_TRUE(outcomes.WaitAll(absl::Now() + 2 * kRpcTimeout));
    EXPECT_EQ(outcomes.Count(grpc::StatusCode::OK), kBatch);
    for (const v1::TriggerModeStatus* status : modes) {
      EXPECT_EQ(status->mode(), mode);
      EXPECT_EQ(status->switches(), 0u);
    }
    for (const auto* response : health) {
      EXPECT_EQ(response->status(), grpc::health::v1::HealthCheckResponse::SERVING);
    }
  }

  std::shared_ptr<Stall> stall_;
  std::vector<std::shared_ptr<void>> calls_;
};

GatewayOptions TwoReactors() {
  GatewayOptions options;
  options.reactors = 2;
  return options;
}

TEST_F(StalledReactorTest, OtherCallsAnswerAndStalledOnesEndAtTheirDeadline) {
  Start(TwoReactors());
  std::vector<TestClient> clients;
  std::set<std::string> peers;
  int fd = -1;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(Connect());
    peers.insert(clients.back().peer_name());
    fd = FdOf(clients.back());
  }
  ASSERT_GE(fd, 0);
  v1::TriggerModeStatus before;
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    ASSERT_TRUE(stub_->GetTriggerMode(&context, v1::GetTriggerModeRequest(), &before).ok());
  }
  ASSERT_EQ(before.switches(), 0u);
  const v1::TriggerMode other = before.mode() == v1::TRIGGER_MODE_EDGE ? v1::TRIGGER_MODE_LEVEL : v1::TRIGGER_MODE_EDGE;

  stall_ = Stall::Start(*gw_, 0);

  // Every call that needs the reactors, a quarter of each kind, all with a
  // short deadline. CloseConnection names an fd no connection has, so its
  // late reply closes nothing.
  Outcomes stalled;
  for (int i = 0; i < kBatch / 4; ++i) {
    StartList(kShortDeadline, stalled);
    StartGet(fd, kShortDeadline, stalled);
    StartClose(1 << 20, kShortDeadline, stalled);
    StartSetMode(other, kShortDeadline, stalled);
  }
  // Meanwhile the calls that need no reactor answer; the mode has not changed.
  ExpectImmediateCallsAnswer(before.mode());

  ASSERT_TRUE(stalled.WaitAll(absl::Now() + 2 * kRpcTimeout));
  EXPECT_EQ(stalled.Count(grpc::StatusCode::DEADLINE_EXCEEDED), kBatch);
  // The server has finished them too, while the reactor is still stalled: no
  // call waits for it.
  EXPECT_TRUE(WaitUntil([] { return UnfinishedUnaryCalls() == 0; }));
  ExpectImmediateCallsAnswer(before.mode());

  stall_->Release();
  // A new listing answers with every connection.
  v1::ListConnectionsResponse listing;
  ASSERT_TRUE(List(v1::ListConnectionsRequest(), &listing).ok());
  std::set<std::string> listed;
  for (const v1::Connection& connection : listing.connections()) listed.insert(connection.peer());
  EXPECT_EQ(listed, peers);
  EXPECT_EQ(listing.total_size(), static_cast<int64_t>(peers.size()));
  // The switches asked for ran once the reactor resumed, one after another:
  // the first one switched, the others found the mode already set.
  EXPECT_TRUE(WaitUntil([&] { return gw_->trigger_mode_switches() == 1; }));
  EXPECT_EQ(ToProto(gw_->trigger_mode()), other);

  // Clean: no call is left for the shutdown to cancel (it would wait forever).
  server_->Shutdown(absl::InfiniteDuration());
}

TEST_F(StalledReactorTest, CallsWithoutDeadlineGetTheirReplyOnceTheReactorResumes) {
  Start(TwoReactors());
  std::vector<TestClient> clients;
  std::set<std::string> peers;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(Connect());
    peers.insert(clients.back().peer_name());
  }
  absl::StatusOr<ConnectionInfo> info = gateway::testing::FindConnection(*gw_, clients.front());
  ASSERT_TRUE(info.ok()) << info.status();
  for (const TestClient& client : clients) ASSERT_GE(FdOf(client), 0);  // every one is listed

  stall_ = Stall::Start(*gw_, 0);
  Outcomes outcomes;
  v1::ListConnectionsResponse* listing = nullptr;
  v1::Connection* connection = nullptr;
  StartList(absl::ZeroDuration(), outcomes, &listing);
  StartGet(info->fd, absl::ZeroDuration(), outcomes, &connection);
  // A watcher gets its headers once every reactor has registered it.
  std::unique_ptr<WatchReader> watch;
  std::mutex watch_mu;
  std::thread watch_opener([&] {
    auto opened = std::make_unique<WatchReader>(stub_.get(), v1::WatchConnectionsRequest());
    std::lock_guard<std::mutex> lock(watch_mu);
    watch = std::move(opened);
  });
  struct Joiner {  // also when an assertion returns early
    std::thread& thread;
    std::shared_ptr<Stall> stall;
    ~Joiner() {
      stall->Release();
      thread.join();
    }
  } joiner{watch_opener, stall_};
  // Both unary calls have reached the server and wait for the stalled reactor.
  ASSERT_TRUE(WaitUntil([] { return UnfinishedUnaryCalls() == 2; }));
  EXPECT_EQ(outcomes.ended(), 0u);
  {
    std::lock_guard<std::mutex> lock(watch_mu);
    EXPECT_EQ(watch, nullptr);
  }

  stall_->Release();
  ASSERT_TRUE(outcomes.WaitAll(absl::Now() + 2 * kRpcTimeout));
  EXPECT_EQ(outcomes.Count(grpc::StatusCode::OK), 2);
  std::set<std::string> listed;
  for (const v1::Connection& c : listing->connections()) listed.insert(c.peer());
  EXPECT_EQ(listed, peers);
  EXPECT_EQ(connection->fd(), info->fd);
  EXPECT_EQ(connection->id(), info->id);
  EXPECT_EQ(connection->peer(), clients.front().peer_name());
  EXPECT_EQ(UnfinishedUnaryCalls(), 0);

  // The headers come once the reactor has resumed.
  ASSERT_TRUE(WaitUntil([&] {
    std::lock_guard<std::mutex> lock(watch_mu);
    return watch != nullptr;
  }));
  TestClient newcomer = Connect();
  EXPECT_TRUE(watch->WaitFor(
      [&](const std::vector<v1::ConnectionEvent>& events) {
        for (const v1::ConnectionEvent& e : events) {
          if (e.type() == v1::ConnectionEvent::TYPE_OPENED && e.connection().peer() == newcomer.peer_name()) {
            return true;
          }
        }
        return false;
      },
      absl::Now() + kRpcTimeout));
  watch->Stop();
  server_->Shutdown(absl::InfiniteDuration());
}

}  // namespace
}  // namespace gateway::control::testing
