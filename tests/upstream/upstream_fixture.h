// The fixture of the in-process upstream tests: the gateway under test (gw_,
// on every reactor back-end, from GatewayIntegrationTest, whose TearDown
// checks that every client connection closed and the books balance) in
// upstream mode in front of in-process backend gateways in their default
// mode (the reverse handler). Test-thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"
#include "tests/upstream/upstream_counters.h"

namespace gateway::testing {

class UpstreamTest : public GatewayIntegrationTest {
 protected:
  // Starts `n` backends, one reactor each, on 127.0.0.1:0.
  void StartBackends(int n) {
    for (int i = 0; i < n; ++i) {
      GatewayOptions options;
      options.reactors = 1;
      absl::StatusOr<std::unique_ptr<Gateway>> backend = StartTestGateway(options);
      ASSERT_OK(backend);
      backends_.push_back(*std::move(backend));
    }
  }
  std::string BackendAddress(int i) const { return absl::StrCat("127.0.0.1:", backends_[i]->port()); }

  // Upstream options naming every backend started, probes off (the counters
  // then hold client requests only, and nothing else talks to a backend),
  // and a request timeout no slow build reaches (these tests are not about
  // timeouts: a burst of megabytes takes seconds under TSan).
  UpstreamOptions AllBackends() const {
    UpstreamOptions upstream;
    upstream.timeout = absl::Seconds(60);
    for (size_t i = 0; i < backends_.size(); ++i) upstream.backends.push_back({BackendAddress(static_cast<int>(i))});
    upstream.probe_interval = absl::ZeroDuration();
    return upstream;
  }

  // Starts the gateway under test: two reactors on the test's back-end.
  void StartFront(UpstreamOptions upstream, ReactorOptions reactor = {}) {
    GatewayOptions options;
    options.reactors = 2;
    GetParam().ApplyTo(&reactor);
    options.reactor = reactor;
    options.upstream = std::move(upstream);
    StartGateway(options);
  }

  // Waits until the books say `n` requests were answered in all (by a
  // backend or with an error response) and nothing is in flight.
  bool AwaitAnswered(uint64_t n) {
    return WaitUntil([&] {
      const UpstreamTotals t = Totals(*gw_);
      return t.answered() >= n;
    });
  }

  void TearDown() override {
    GatewayIntegrationTest::TearDown();
    for (auto& backend : backends_) backend->Shutdown(absl::Seconds(5));
  }

  std::vector<std::unique_ptr<Gateway>> backends_;
};

}  // namespace gateway::testing
