// The chaos tests' set-up: backends as child processes (kill -9, SIGSTOP),
// the gateway under test in-process in front of them with short timeouts and
// fast probes, and a checking load of pipelined connections. Every fault's
// cost is bounded by what a client can have in flight: connections × depth.
// Test-thread only.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"
#include "tests/upstream/backend_process.h"
#include "tests/upstream/checking_load.h"
#include "tests/upstream/upstream_counters.h"

namespace gateway::testing {

inline constexpr int kConnections = 8;
inline constexpr int kDepth = 16;
inline constexpr uint64_t kInFlightBound = kConnections * kDepth;  // per fault
// Requests per second: enough to keep every pipeline busy through a fault,
// little enough not to starve the machine during the long waits.
inline constexpr uint64_t kRate = 40000;
// Generous bounds for one phase of a chaos test (they never decide a pass).
inline constexpr absl::Duration kPhase = absl::Seconds(30);

class ChaosFixture {
 protected:
  // Upstream options with short timeouts and fast probes, naming `addresses`.
  static UpstreamOptions FastUpstream(const std::vector<std::string>& addresses) {
    UpstreamOptions upstream;
    for (const std::string& a : addresses) upstream.backends.push_back({a});
    upstream.timeout = absl::Seconds(1);  // healthy backends answer well within it, even under TSan
    upstream.connect_timeout = absl::Milliseconds(300);
    upstream.probe_interval = absl::Milliseconds(100);
    upstream.eject_backoff = absl::Milliseconds(200);
    return upstream;
  }

  void StartBackends(int n) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<std::unique_ptr<BackendProcess>> b = BackendProcess::Start();
      ASSERT_OK(b);
      backends_.push_back(*std::move(b));
    }
  }
  std::vector<std::string> BackendAddresses() const {
    std::vector<std::string> out;
    for (const auto& b : backends_) out.push_back(b->address());
    return out;
  }

  void StartFront(const Backend& backend, UpstreamOptions upstream) {
    GatewayOptions options;
    options.reactors = 2;
    backend.ApplyTo(&options.reactor);
    options.upstream = std::move(upstream);
    ASSERT_OK_AND_ASSIGN(gw_, StartTestGateway(options));
  }

  void StartLoad(UpstreamErrorMode mode = UpstreamErrorMode::kEmptyFrame, uint64_t seed = 1) {
    LoadOptions options;
    options.port = gw_->port();
    options.connections = kConnections;
    options.depth = kDepth;
    options.seed = seed;
    options.error_mode = mode;
    options.max_rate = kRate;
    ASSERT_OK_AND_ASSIGN(load_, CheckingLoad::Start(options));
  }
  // Waits for `more` answers beyond those so far; false (with the load's
  // first violation visible in Finish) if they do not come.
  bool Flow(uint64_t more) { return load_->AwaitAnswered(load_->answered() + more, Deadline(kPhase)); }

  // Stops the load and checks what every chaos test promises: every request
  // answered, in order, right or the error frame, no reset; and once quiet,
  // the books: what the backends answered and failed (plus what no backend
  // was blamed for) is what the clients sent and saw.
  LoadReport FinishAndCheck(const std::vector<BackendInfo>& removed = {}) {
    const LoadReport report = load_->Finish(Deadline(kPhase));
    EXPECT_TRUE(report.violations.empty()) << Describe(report);
    EXPECT_TRUE(report.drained) << Describe(report);
    EXPECT_EQ(report.resets, 0u) << Describe(report);
    EXPECT_EQ(report.answered(), report.sent) << Describe(report);
    EXPECT_TRUE(WaitUntil([&] { return Totals(*gw_, removed).answered() >= report.sent; }, Deadline(kPhase)))
        << DescribeBackends(*gw_);
    const UpstreamTotals t = Totals(*gw_, removed);
    EXPECT_EQ(t.responses, report.ok) << DescribeBackends(*gw_);
    EXPECT_EQ(t.error_responses(), report.errors) << DescribeBackends(*gw_);
    // Every request written was answered or failed, and no request that was
    // never written failed (it is re-dispatched instead).
    EXPECT_EQ(t.requests, t.responses + t.backend_errors)
        << "requests written vs answered + failed: errors for requests never written?\n"
        << DescribeBackends(*gw_);
    EXPECT_TRUE(WaitUntil([&] { return gw_->active_connections() == 0; })) << "client connections left open";
    return report;
  }

  void TearDownFront() {
    if (load_ != nullptr) load_->Finish(Deadline());
    if (gw_ != nullptr) gw_->Shutdown(absl::Seconds(5));
    for (auto& b : backends_) b->Resume();  // a stopped one must be able to stop
  }

  BackendState StateOf(const std::string& address) {
    absl::StatusOr<BackendInfo> info = gw_->GetBackend(address);
    return info.ok() ? info->state : BackendState::kHealthy;
  }
  uint64_t ErrorsOf(const std::string& address, UpstreamError kind) {
    absl::StatusOr<BackendInfo> info = gw_->GetBackend(address);
    return info.ok() ? info->errors[static_cast<int>(kind)] : 0;
  }
  uint64_t RequestsOf(const std::string& address) {
    absl::StatusOr<BackendInfo> info = gw_->GetBackend(address);
    return info.ok() ? info->requests : 0;
  }
  // Returns once every reactor has run a task posted now, so whatever one
  // was doing meanwhile (a send and counting it as written) is over.
  bool AwaitReactorTurns() {
    auto ran = std::make_shared<std::atomic<int>>(0);
    for (int i = 0; i < gw_->num_reactors(); ++i) {
      if (!gw_->PostForTesting(i, [ran] { ran->fetch_add(1); })) return false;
    }
    return WaitUntil([&] { return ran->load() == gw_->num_reactors(); });
  }
  uint64_t ResponsesOf(const std::string& address) {
    absl::StatusOr<BackendInfo> info = gw_->GetBackend(address);
    return info.ok() ? info->responses : 0;
  }

  std::vector<std::unique_ptr<BackendProcess>> backends_;
  std::unique_ptr<Gateway> gw_;
  std::unique_ptr<CheckingLoad> load_;
};

}  // namespace gateway::testing
