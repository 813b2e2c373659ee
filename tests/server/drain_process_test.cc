// The gateway binary's Kubernetes drain, as a process: on SIGTERM readiness
// ("" and "readiness" on --health_listen and on the control plane) turns
// NOT_SERVING at once while liveness stays SERVING and the data plane still
// accepts for --drain_delay; then every connection gets its answers and a
// FIN, and the process exits 0. A second signal cuts the delay short; a busy
// health port is one line and exit 1.
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/support/health_check.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

#ifndef GATEWAY_BINARY
#error "GATEWAY_BINARY must name the gateway executable"
#endif

namespace gateway::testing {
namespace {

std::shared_ptr<grpc::Channel> Channel(int port) {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
}

absl::StatusOr<std::unique_ptr<Subprocess>> StartGateway(const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {GATEWAY_BINARY,      "--listen=127.0.0.1:0",        "--control_listen=127.0.0.1:0",
                                   "--metrics_listen=", "--health_listen=127.0.0.1:0", "--reactors=2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return Subprocess::Start(argv);
}

bool StatusIs(const std::shared_ptr<grpc::Channel>& channel, const std::string& service, int want) {
  absl::StatusOr<int> got = HealthCheck(channel, service);
  return got.ok() && *got == want;
}

TEST(DrainProcessTest, ReadinessGoesOffAtSigtermWhileTheDataPlaneStillAccepts) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       StartGateway({"--drain_delay=8s", "--drain_spread=200ms", "--drain_timeout=10s"}));
  const int data_port = WaitForReadyPort(*gateway, "data_port", Deadline());
  const int health_port = WaitForReadyPort(*gateway, "health_port", Deadline());
  const int control_port = WaitForReadyPort(*gateway, "control_port", Deadline());
  ASSERT_GT(data_port, 0) << gateway->Log();
  ASSERT_GT(health_port, 0) << gateway->Log();
  const std::shared_ptr<grpc::Channel> health = Channel(health_port);
  const std::shared_ptr<grpc::Channel> control = Channel(control_port);
  for (const std::string service : {"", "readiness", "liveness"}) {
    EXPECT_TRUE(StatusIs(health, service, kServing)) << "'" << service << "'";
    EXPECT_TRUE(StatusIs(control, service, kServing)) << "'" << service << "'";
  }
  EXPECT_EQ(HealthCheck(health, "no.such.Service").status().code(), absl::StatusCode::kNotFound);

  ASSERT_OK_AND_ASSIGN(TestClient before, TestClient::Connect(data_port));
  ASSERT_OK_AND_ASSIGN(const std::string first, before.RoundTrip("before"));
  EXPECT_EQ(first, "erofeb");

  ASSERT_EQ(kill(gateway->pid(), SIGTERM), 0);
  EXPECT_TRUE(WaitUntil([&] { return StatusIs(health, "readiness", kNotServing); })) << gateway->Log();
  EXPECT_TRUE(StatusIs(health, "", kNotServing));
  EXPECT_TRUE(StatusIs(health, "liveness", kServing));
  EXPECT_TRUE(StatusIs(control, "readiness", kNotServing));
  // Not ready, but still serving and accepting: endpoints take a while to
  // stop sending clients here.
  ASSERT_OK_AND_ASSIGN(TestClient during, TestClient::Connect(data_port));
  ASSERT_OK_AND_ASSIGN(const std::string second, during.RoundTrip("during"));
  EXPECT_EQ(second, "gnirud");
  ASSERT_OK_AND_ASSIGN(const std::string third, before.RoundTrip("still"));
  EXPECT_EQ(third, "llits");

  // After the delay: a FIN on each, then exit 0.
  EXPECT_OK(before.ExpectEof(Deadline(absl::Seconds(30))));
  EXPECT_OK(during.ExpectEof(Deadline(absl::Seconds(30))));
  EXPECT_EQ(gateway->Wait(Deadline(absl::Seconds(30))), 0) << gateway->Log();
  const std::string log = gateway->Log();
  EXPECT_TRUE(absl::StrContains(log, "SIGTERM received, draining")) << log;
  EXPECT_TRUE(absl::StrContains(log, "gateway: stopped")) << log;
}

TEST(DrainProcessTest, ASecondSignalCutsTheDelayShort) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, StartGateway({"--drain_delay=1h"}));
  const int health_port = WaitForReadyPort(*gateway, "health_port", Deadline());
  ASSERT_GT(health_port, 0) << gateway->Log();
  ASSERT_EQ(kill(gateway->pid(), SIGTERM), 0);
  EXPECT_TRUE(WaitUntil([&] { return StatusIs(Channel(health_port), "readiness", kNotServing); }));
  ASSERT_EQ(kill(gateway->pid(), SIGINT), 0);
  EXPECT_EQ(gateway->Wait(Deadline(absl::Seconds(60))), 0) << gateway->Log();
  EXPECT_TRUE(absl::StrContains(gateway->Log(), "drain delay cut short")) << gateway->Log();
}

TEST(DrainProcessTest, BusyHealthPortIsAOneLineErrorAndExitOne) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket busy, ListenOnLoopback(1));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       StartGateway({absl::StrCat("--health_listen=127.0.0.1:", busy.port())}));
  EXPECT_EQ(gateway->Wait(Deadline()), 1) << gateway->Log();
  const std::string log = gateway->Log();
  EXPECT_TRUE(absl::StrContains(
      log, absl::StrCat("gateway: cannot serve health checks on 127.0.0.1:", busy.port(), ": Address already in use")))
      << log;
}

TEST(DrainProcessTest, BadDrainFlagsFailAtStart) {
  for (const std::string flag :
       {"--drain_delay=-1s", "--drain_spread=-1s", "--max_connection_age=-1s", "--max_connection_age_jitter=1.5"}) {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, StartGateway({flag}));
    EXPECT_EQ(gateway->Wait(Deadline()), 1) << flag << ": " << gateway->Log();
    EXPECT_TRUE(absl::StrContains(gateway->Log(), flag.substr(0, flag.find('=')))) << gateway->Log();
  }
}

}  // namespace
}  // namespace gateway::testing
