// Chaos under pipelined load, every response checked (CheckingLoad): a
// backend killed with SIGKILL, one stopped past the request timeout, backends
// drained, removed, re-added and re-weighted while traffic flows, a backend
// that answers garbage, and the close error mode. Each case: every request
// gets exactly one response, in order, the right payload or the empty frame;
// error frames stay within what was in flight at the fault; no client is
// reset; the books balance.
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"
#include "tests/upstream/chaos_fixture.h"
#include "tests/upstream/garbage_backend.h"

namespace gateway::testing {
namespace {

std::vector<Backend> ChaosBackends() { return {{IoModel::kEpoll, TriggerMode::kEdge}, {IoModel::kIoUring}}; }

class UpstreamChaosTest : public ::testing::TestWithParam<Backend>, public ChaosFixture {
 protected:
  void SetUp() override { GATEWAY_SKIP_IF_UNAVAILABLE(GetParam()); }
  void TearDown() override { TearDownFront(); }
};

TEST_P(UpstreamChaosTest, KillOneOfTwoBackends) {
  StartBackends(2);
  StartFront(GetParam(), FastUpstream(BackendAddresses()));
  StartLoad();
  ASSERT_TRUE(Flow(2000)) << Describe(load_->Finish(Deadline()));
  backends_[0]->Kill();
  const std::string dead = backends_[0]->address();
  // The dead one is noticed (probes fail or it is ejected); traffic goes on.
  EXPECT_TRUE(WaitUntil([&] { return StateOf(dead) != BackendState::kHealthy; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  EXPECT_TRUE(Flow(3000));
  const uint64_t errors_after_ejection = load_->errors();
  EXPECT_TRUE(Flow(2000));
  EXPECT_EQ(load_->errors(), errors_after_ejection) << "errors after the dead backend was taken out";
  const LoadReport report = FinishAndCheck();
  EXPECT_LE(report.errors, kInFlightBound) << Describe(report);
}

TEST_P(UpstreamChaosTest, StopOneBackendPastTheTimeoutThenContinueIt) {
  StartBackends(2);
  StartFront(GetParam(), FastUpstream(BackendAddresses()));
  StartLoad();
  ASSERT_TRUE(Flow(2000)) << Describe(load_->Finish(Deadline()));
  const std::string stopped = backends_[0]->address();
  backends_[0]->Pause();
  EXPECT_TRUE(WaitUntil([&] { return ErrorsOf(stopped, UpstreamError::kTimeout) > 0; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  EXPECT_TRUE(WaitUntil([&] { return StateOf(stopped) != BackendState::kHealthy; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  EXPECT_TRUE(Flow(3000)) << DescribeBackends(*gw_);
  backends_[0]->Resume();
  // Its late responses are swallowed; once its probes pass it takes traffic again.
  EXPECT_TRUE(WaitUntil([&] { return StateOf(stopped) == BackendState::kHealthy; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  const uint64_t before = ResponsesOf(stopped);
  EXPECT_TRUE(WaitUntil([&] { return ResponsesOf(stopped) >= before + 200; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  const LoadReport report = FinishAndCheck();
  EXPECT_GT(report.errors, 0u) << "nothing timed out while the backend was stopped";
  EXPECT_LE(report.errors, kInFlightBound) << Describe(report);
}

// Both backends killed: every new request gets the empty frame at once (no
// hang, no reset); one restarted on its port takes traffic again once its
// probes pass.
TEST_P(UpstreamChaosTest, KillBothThenRestartOne) {
  StartBackends(2);
  StartFront(GetParam(), FastUpstream(BackendAddresses()));
  StartLoad();
  ASSERT_TRUE(Flow(2000)) << Describe(load_->Finish(Deadline()));
  const int port = backends_[0]->port();
  backends_[0]->Kill();
  backends_[1]->Kill();
  // With no backend, answers are errors and keep coming.
  const uint64_t errors_before = load_->errors();
  EXPECT_TRUE(
      WaitUntil([&] { return load_->errors() >= errors_before + 2000 || load_->violations() > 0; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  absl::StatusOr<std::unique_ptr<BackendProcess>> restarted = BackendProcess::Start(port);
  ASSERT_OK(restarted);
  backends_[0] = *std::move(restarted);
  const uint64_t ok_before = load_->ok();
  EXPECT_TRUE(WaitUntil([&] { return load_->ok() >= ok_before + 2000 || load_->violations() > 0; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  FinishAndCheck();
}

// Drain, undrain, re-weight, remove and re-add, one every few hundred
// milliseconds while traffic flows, always leaving one backend taking
// requests: no error at all (a drained or removed backend finishes what it
// has in flight first).
TEST_P(UpstreamChaosTest, ManagementCallsUnderLoadCostNoError) {
  StartBackends(2);
  StartFront(GetParam(), FastUpstream(BackendAddresses()));
  StartLoad();
  ASSERT_TRUE(Flow(1000)) << Describe(load_->Finish(Deadline()));
  const std::string a = backends_[0]->address();
  const std::string b = backends_[1]->address();
  std::vector<BackendInfo> removed;
  // Before one backend is drained or removed, the other must take requests
  // (a re-added one may wait for its probes).
  auto other_healthy = [&](const std::string& address) {
    const std::string& other = address == a ? b : a;
    EXPECT_TRUE(WaitUntil([&] { return StateOf(other) == BackendState::kHealthy; }, Deadline(kPhase)))
        << DescribeBackends(*gw_);
  };
  auto drain = [&](const std::string& address) {
    other_healthy(address);
    absl::StatusOr<BackendInfo> info = gw_->DrainBackend(address, absl::Seconds(10));
    ASSERT_OK(info) << address;
    EXPECT_EQ(info->state, BackendState::kDraining);
    EXPECT_EQ(info->inflight, 0u);
    EXPECT_EQ(info->pending, 0u);
  };
  auto undrain = [&](const std::string& address) { ASSERT_OK(gw_->UndrainBackend(address)) << address; };
  auto remove = [&](const std::string& address) {
    other_healthy(address);
    absl::StatusOr<BackendInfo> info = gw_->RemoveBackend(address, absl::Seconds(10));
    ASSERT_OK(info) << address;
    EXPECT_EQ(info->inflight, 0u);
    removed.push_back(*info);
    EXPECT_EQ(gw_->GetBackend(address).status().code(), absl::StatusCode::kNotFound);
  };
  auto add = [&](const std::string& address) {
    absl::StatusOr<BackendInfo> info = gw_->AddBackend({address, 1});
    ASSERT_OK(info) << address;
    EXPECT_EQ(gw_->AddBackend({address, 1}).status().code(), absl::StatusCode::kAlreadyExists);
  };
  auto weight = [&](const std::string& address, uint32_t w) {
    ASSERT_OK(gw_->SetBackendWeight(address, w)) << address;
  };
  const std::vector<std::function<void()>> steps = {
      [&] { drain(a); }, [&] { undrain(a); }, [&] { weight(a, 5); }, [&] { remove(b); },    [&] { add(b); },
      [&] { drain(b); }, [&] { undrain(b); }, [&] { weight(a, 1); }, [&] { remove(a); },    [&] { add(a); },
      [&] { drain(a); }, [&] { remove(a); },  [&] { add(a); },       [&] { weight(b, 2); },
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("step ", i));
    steps[i]();
    if (HasFatalFailure()) break;
    // Traffic flows between steps (the pause only paces the calls).
    EXPECT_TRUE(Flow(300)) << DescribeBackends(*gw_);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const LoadReport report = FinishAndCheck(removed);
  EXPECT_EQ(report.errors, 0u) << Describe(report) << "\n" << DescribeBackends(*gw_);
}

// upstream.error_mode = kClose: a client with a request on a killed backend
// gets its earlier responses, then EOF (never the empty frame, never a
// reset); the others go on.
TEST_P(UpstreamChaosTest, CloseModeGivesEarlierResponsesThenEof) {
  StartBackends(2);
  UpstreamOptions upstream = FastUpstream(BackendAddresses());
  upstream.error_mode = UpstreamErrorMode::kClose;
  StartFront(GetParam(), upstream);
  StartLoad(UpstreamErrorMode::kClose);
  ASSERT_TRUE(Flow(2000)) << Describe(load_->Finish(Deadline()));
  // Stopped first, so requests are surely written to it and unanswered when
  // it dies (a kill between two bursts could find none: nothing to fail).
  backends_[0]->Pause();
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<BackendInfo> b = gw_->GetBackend(backends_[0]->address());
        return b.ok() && b->inflight > 0;
      },
      Deadline(kPhase)))
      << DescribeBackends(*gw_);
  backends_[0]->Kill();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kUpstreamError) > 0; }, Deadline(kPhase)));
  const LoadReport report = load_->Finish(Deadline(kPhase));
  EXPECT_TRUE(report.violations.empty()) << Describe(report);
  EXPECT_TRUE(report.drained) << Describe(report);
  EXPECT_EQ(report.resets, 0u);
  EXPECT_EQ(report.errors, 0u);
  EXPECT_GE(report.closed, 1u) << Describe(report);
  EXPECT_LE(report.closed, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(report.answered() + report.lost, report.sent) << Describe(report);
  // Counted once our side has closed too (the gateway lingers for our FIN).
  EXPECT_TRUE(WaitUntil([&] { return gw_->active_connections() == 0; }));
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kUpstreamError), report.closed);
}

INSTANTIATE_TEST_SUITE_P(Backends, UpstreamChaosTest, ::testing::ValuesIn(ChaosBackends()), BackendName());

// A backend that answers garbage next to a good one: each of its upstream
// connections fails at its first answer (at most what was in flight on it),
// it is taken out, and the good one carries on.
class GarbageBackendTest : public ::testing::TestWithParam<Garbage>, public ChaosFixture {
 protected:
  void TearDown() override { TearDownFront(); }
};

TEST_P(GarbageBackendTest, GarbageNextToAGoodBackend) {
  StartBackends(1);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<GarbageBackend> garbage, GarbageBackend::Start(GetParam()));
  StartFront(Backend{}, FastUpstream({backends_[0]->address(), garbage->address()}));
  StartLoad();
  ASSERT_TRUE(Flow(3000)) << Describe(load_->Finish(Deadline())) << "\n" << DescribeBackends(*gw_);
  EXPECT_TRUE(WaitUntil([&] { return StateOf(garbage->address()) != BackendState::kHealthy; }, Deadline(kPhase)))
      << DescribeBackends(*gw_);
  EXPECT_TRUE(Flow(3000)) << DescribeBackends(*gw_);
  const LoadReport report = FinishAndCheck();
  EXPECT_GT(report.errors, 0u);
  EXPECT_LE(report.errors, static_cast<uint64_t>(garbage->accepted()) * kInFlightBound)
      << Describe(report) << ", garbage connections accepted: " << garbage->accepted();
  EXPECT_EQ(ResponsesOf(garbage->address()), 0u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, GarbageBackendTest,
                         ::testing::Values(Garbage::kNotDigits, Garbage::kEmptyFrame, Garbage::kTruncated),
                         [](const ::testing::TestParamInfo<Garbage>& info) { return GarbageName(info.param); });

}  // namespace
}  // namespace gateway::testing
