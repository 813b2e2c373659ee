// A rolling update emulated on loopback. Gateway processes on 127.0.0.2/.3/.4
// stand in for pods; the harness plays the EndpointSlice controller and
// kube-proxy (a shared endpoint list each new client connection picks from)
// and terminates the old pods one by one, removing each from the endpoints
// only 1 s after its SIGTERM: the real race between the kubelet and the
// endpoint update. Reconnecting clients (the client contract) run paced
// traffic throughout.
//
// With --drain_delay covering that second, nothing may go wrong: no failed,
// lost or duplicated request, no reset, no refused connect, each old pod
// exiting 0 within its drain window. The negative control turns the delay off
// and must show refused connects, proving the test sees the race.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/targets.h"
#include "gtest/gtest.h"
#include "tests/rollout/client_fleet.h"
#include "tests/rollout/pod.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"

#ifndef GATEWAY_BINARY
#error "GATEWAY_BINARY must name the gateway executable"
#endif

namespace gateway::testing {
namespace {

constexpr absl::Duration kEndpointLag = absl::Seconds(1);  // SIGTERM to endpoint removal
constexpr absl::Duration kDrainTimeout = absl::Seconds(10);
constexpr absl::Duration kExitMargin = absl::Seconds(2);

struct RolloutResult {
  ClientTotals clients;
  std::vector<std::optional<int>> old_exit_codes;
  std::vector<absl::Duration> old_exit_after;  // SIGTERM to exit
  std::string timeline;                        // what happened when, for failure messages
};

class RollingUpdateTest : public ::testing::Test {
 protected:
  void SetUp() override { RaiseFdLimit(); }

  // Starts a pod on `ip` and waits for its readiness.
  std::unique_ptr<Pod> StartReadyPod(const std::string& ip, const PodPorts& ports,
                                     const std::vector<std::string>& flags) {
    absl::StatusOr<std::unique_ptr<Pod>> pod = Pod::Start(GATEWAY_BINARY, ip, ports, flags);
    EXPECT_OK(pod);
    if (!pod.ok()) return nullptr;
    const absl::Status ready = (*pod)->WaitReady(absl::Now() + absl::Seconds(10));
    EXPECT_OK(ready);
    return ready.ok() ? *std::move(pod) : nullptr;
  }

  // Two old pods (.2, .3) under load; each is replaced in turn: a new pod
  // starts (.4, then the address the first old pod freed) and turns ready
  // and joins the endpoints, the old one gets SIGTERM, leaves the endpoints
  // kEndpointLag later, and is waited for.
  RolloutResult RollingUpdate(absl::Duration drain_delay) {
    RolloutResult result;
    const std::vector<std::string> flags = {absl::StrCat("--drain_delay=", absl::FormatDuration(drain_delay)),
                                            "--drain_spread=1s",
                                            absl::StrCat("--drain_timeout=", absl::FormatDuration(kDrainTimeout))};
    absl::StatusOr<PodPorts> ports = PickPodPorts();
    EXPECT_OK(ports);
    if (!ports.ok()) return result;
    bench::Targets endpoints;
    std::vector<std::unique_ptr<Pod>> old_pods;
    for (const char* ip : {"127.0.0.2", "127.0.0.3"}) {
      old_pods.push_back(StartReadyPod(ip, *ports, flags));
      if (old_pods.back() == nullptr) return result;
      endpoints.Add(old_pods.back()->endpoint());
    }
    ClientFleet::Options options;
    options.traffic = absl::Seconds(7) + 2 * (drain_delay + absl::Seconds(3));
    ClientFleet clients(endpoints, options);
    const absl::Time start = absl::Now();
    auto note = [&](const std::string& what) {
      absl::StrAppend(&result.timeline, absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
                      " ", what, "\n");
    };
    EXPECT_OK(clients.Start());
    note("clients connected");
    absl::SleepFor(absl::Seconds(1));

    std::vector<std::unique_ptr<Pod>> new_pods;
    std::string free_ip = "127.0.0.4";
    for (std::unique_ptr<Pod>& old : old_pods) {
      new_pods.push_back(StartReadyPod(free_ip, *ports, flags));
      if (new_pods.back() == nullptr) break;
      endpoints.Add(new_pods.back()->endpoint());
      note(absl::StrCat(free_ip, " ready, added"));
      old->Terminate();
      note(absl::StrCat(old->ip(), " SIGTERM"));
      absl::SleepFor(kEndpointLag);
      endpoints.Remove(old->endpoint().name);
      note(absl::StrCat(old->ip(), " removed"));
      result.old_exit_codes.push_back(old->WaitExit(old->terminated_at() + drain_delay + kDrainTimeout + kExitMargin));
      result.old_exit_after.push_back(old->exited_at() - old->terminated_at());
      if (!result.old_exit_codes.back().has_value()) ADD_FAILURE() << old->ip() << " did not exit:\n" << old->Log();
      note(absl::StrCat(old->ip(), " exited"));
      free_ip = old->ip();
    }
    absl::SleepFor(absl::Seconds(1));  // traffic on the new pods alone
    EXPECT_LT(absl::Now(), clients.traffic_end()) << "the rollout outlasted the client traffic";
    result.clients = clients.Finish();
    return result;
  }
};

TEST_F(RollingUpdateTest, DrainDelayCoversTheEndpointLagAndNoRequestFails) {
  const absl::Duration drain_delay = absl::Seconds(2);
  const RolloutResult r = RollingUpdate(drain_delay);
  const ClientTotals& c = r.clients;
  SCOPED_TRACE(absl::StrCat(c.ToString(), "\n", r.timeline));
  std::printf("%s\n%s", c.ToString().c_str(), r.timeline.c_str());  // the figures, for the log
  EXPECT_EQ(c.established, c.conns);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.lost, 0u);
  EXPECT_EQ(c.mismatched, 0u);
  EXPECT_EQ(c.duplicated, 0u);
  EXPECT_EQ(c.errors, 0u);
  EXPECT_EQ(c.resets, 0u);
  EXPECT_EQ(c.refused, 0u);
  // The drain did close connections (each an EOF the clients reconnected on).
  EXPECT_GE(c.eofs, static_cast<uint64_t>(c.conns) / 2);
  EXPECT_EQ(c.reconnects, c.eofs);
  EXPECT_GT(c.completed, 0u);
  ASSERT_EQ(r.old_exit_codes.size(), 2u);
  for (size_t i = 0; i < r.old_exit_codes.size(); ++i) {
    EXPECT_EQ(r.old_exit_codes[i], std::optional<int>(0)) << "old pod " << i;
    EXPECT_LE(r.old_exit_after[i], drain_delay + kDrainTimeout + kExitMargin) << "old pod " << i;
  }
}

// The negative control: without the drain delay the old pod stops accepting
// at SIGTERM while it is still an endpoint, so connects are refused (the
// clients retry elsewhere, so requests still succeed).
TEST_F(RollingUpdateTest, WithoutDrainDelayConnectsAreRefused) {
  const RolloutResult r = RollingUpdate(absl::ZeroDuration());
  const ClientTotals& c = r.clients;
  SCOPED_TRACE(absl::StrCat(c.ToString(), "\n", r.timeline));
  std::printf("%s\n%s", c.ToString().c_str(), r.timeline.c_str());  // the figures, for the log
  EXPECT_GT(c.refused, 0u);
  EXPECT_EQ(c.failed, 0u);
  EXPECT_EQ(c.lost, 0u);
  ASSERT_EQ(r.old_exit_codes.size(), 2u);
  for (const std::optional<int>& code : r.old_exit_codes) EXPECT_EQ(code, std::optional<int>(0));
}

}  // namespace
}  // namespace gateway::testing
