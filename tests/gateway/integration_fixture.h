// The fixture of the in-process data-plane tests (*_integration_test.cc): a
// Gateway with two reactors on 127.0.0.1:0, real sockets, every test run in
// every back-end (see tests/support/backends.h). After each test every connection must be closed and the
// books must balance. Test-thread only.
#pragma once

#include <functional>
#include <memory>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {

// The deadline of one step that moves megabytes.
inline constexpr absl::Duration kBigStep = absl::Seconds(60);

class GatewayIntegrationTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { GATEWAY_SKIP_IF_UNAVAILABLE(GetParam()); }

  // Starts two reactors on the test's back-end with `reactor`'s options.
  void StartGateway(ReactorOptions reactor = {}, absl::string_view listen = "127.0.0.1:0") {
    GatewayOptions options;
    options.reactors = 2;
    GetParam().ApplyTo(&reactor);
    options.reactor = reactor;
    StartGateway(options, listen);
  }
  // Starts a gateway with `options` exactly as given.
  void StartGateway(const GatewayOptions& options, absl::string_view listen = "127.0.0.1:0") {
    ASSERT_OK_AND_ASSIGN(gw_, StartTestGateway(options, listen));
  }
  bool on_epoll() const { return GetParam().model == IoModel::kEpoll; }

  // Every test's clients are gone by now: every connection must close, and
  // the books must balance (each accepted connection closed exactly once,
  // with a reason; no gauge left above zero).
  void TearDown() override {
    if (!gw_) return;
    auto balanced = [this] {
      uint64_t closed = 0;
      for (int r = 0; r < kNumCloseReasons; ++r) closed += ClosedCount(*gw_, static_cast<CloseReason>(r));
      int64_t in_states = 0;
      for (int i = 0; i < gw_->num_reactors(); ++i) {
        in_states += gw_->reactor_stats(i).active.Get();
        for (const RelaxedGauge& g : gw_->reactor_stats(i).by_state) in_states += g.Get();
      }
      return gw_->active_connections() == 0 && in_states == 0 && closed == SumStat(*gw_, &ReactorStats::accepted);
    };
    EXPECT_TRUE(WaitUntil(balanced)) << "connections left open or counters unbalanced";
    for (int i = 0; i < gw_->num_reactors(); ++i) {
      EXPECT_EQ(gw_->reactor_stats(i).active.Get(), 0) << "reactor " << i;
      for (int s = 0; s < kNumConnectionStates; ++s) {
        EXPECT_EQ(gw_->reactor_stats(i).by_state[s].Get(), 0)
            << "reactor " << i << " state " << ConnectionStateName(static_cast<ConnectionState>(s));
      }
    }
    gw_->Shutdown(absl::Seconds(5));
  }

  // Connects a client; a failed connect fails the test and returns a closed client.
  TestClient Connect(absl::string_view host = "127.0.0.1") {
    absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port(), Deadline(), host);
    EXPECT_OK(client);
    return client.ok() ? *std::move(client) : TestClient();
  }

  // Polls the server's snapshot of connection `fd` until `condition` holds
  // of it or `deadline` passes; returns whether it held. The last snapshot
  // seen is left in `*last` if given.
  bool AwaitConnection(int fd, const std::function<bool(const ConnectionInfo&)>& condition,
                       absl::Time deadline = Deadline(), ConnectionInfo* last = nullptr) {
    return WaitUntil(
        [&] {
          absl::StatusOr<ConnectionInfo> info = gw_->GetConnection(fd);
          if (!info.ok()) return false;
          if (last != nullptr) *last = *info;
          return condition(*info);
        },
        deadline);
  }

  // Waits until the server has read `bytes` bytes from the connection `fd`.
  bool AwaitBytesIn(int fd, uint64_t bytes) {
    return AwaitConnection(fd, [&](const ConnectionInfo& info) { return info.bytes_in >= bytes; });
  }

  std::unique_ptr<Gateway> gw_;
};

// Runs a suite derived from GatewayIntegrationTest on every reactor back-end,
// named .../epoll_edge, .../poll, .../io_uring, ...
#define INSTANTIATE_ON_REACTOR_BACKENDS(suite) \
  INSTANTIATE_TEST_SUITE_P(Backends, suite, ::testing::ValuesIn(ReactorBackends()), BackendName())
// The same plus the blocking (thread-per-connection) model.
#define INSTANTIATE_ON_ALL_BACKENDS(suite) \
  INSTANTIATE_TEST_SUITE_P(Backends, suite, ::testing::ValuesIn(AllBackends()), BackendName())

}  // namespace gateway::testing
