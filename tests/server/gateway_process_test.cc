// Tests of the real gateway binary as a process: graceful SIGTERM/SIGINT
// (every frame already sent is answered, then EOF, exit status 0, the port
// closed), the drain timeout, start-up errors (busy port, bad flags: one
// line on stderr, non-zero exit), and upstream mode in front of a second
// gateway process.
#include <signal.h>

#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

#ifndef GATEWAY_BINARY
#error "GATEWAY_BINARY must name the gateway executable"
#endif

namespace gateway::testing {
namespace {

// Starts the gateway binary with `args`, its stdout and stderr in its log.
// The control plane and metrics listen on fixed default ports, which other
// tests running in parallel may hold: off unless a test asks for them (a
// later flag wins).
absl::StatusOr<std::unique_ptr<Subprocess>> StartGateway(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GATEWAY_BINARY, "--control_listen=", "--metrics_listen="};
  argv.insert(argv.end(), args.begin(), args.end());
  return Subprocess::Start(argv);
}

// The data port from the ready line; 0 if absent.
int ServingPort(Subprocess& gateway) { return WaitForReadyPort(gateway, "data_port", Deadline()); }

// Runs the binary with `args` (control plane and metrics off) to its exit;
// returns its exit code and everything it wrote.
std::pair<int, std::string> RunToExit(const std::vector<std::string>& args) {
  absl::StatusOr<std::unique_ptr<Subprocess>> gateway = StartGateway(args);
  EXPECT_TRUE(gateway.ok()) << gateway.status();
  if (!gateway.ok()) return {-1, ""};
  const std::optional<int> exit_code = (*gateway)->Wait(Deadline());
  EXPECT_TRUE(exit_code.has_value());
  return {exit_code.value_or(-1), (*gateway)->Log()};
}

bool ConnectRefused(int port) {
  absl::StatusOr<TestClient> client = TestClient::Connect(port, Deadline(absl::Seconds(5)));
  return !client.ok() && absl::StrContains(client.status().message(), "refused");
}

std::vector<std::string> Lines(const std::string& text) { return absl::StrSplit(text, '\n', absl::SkipEmpty()); }

class GracefulStopTest : public ::testing::TestWithParam<int> {};  // the signal

TEST_P(GracefulStopTest, AnswersEverythingReceivedThenEofAndExitZero) {
  const int signo = GetParam();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       StartGateway({"--listen=127.0.0.1:0", "--reactors=2", "--drain_timeout=20s"}));
  const int port = ServingPort(*gateway);
  ASSERT_GT(port, 0) << gateway->Log();

  // An idle client, and one that has a round trip done (so it is accepted)
  // and then pipelines frames the server has received but maybe not read.
  ASSERT_OK_AND_ASSIGN(TestClient idle, TestClient::Connect(port));
  ASSERT_OK(idle.RoundTrip("idle"));
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(port));
  ASSERT_OK_AND_ASSIGN(const std::string first, client.RoundTrip("first"));
  EXPECT_EQ(first, "tsrif");
  std::mt19937_64 rng(9);
  std::string requests, expected;
  for (int i = 0; i < 200; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 1000);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_OK(client.WriteAll(requests));
  // Every byte has reached the server's kernel before the signal.
  EXPECT_TRUE(AwaitAcked(client));

  ASSERT_EQ(kill(gateway->pid(), signo), 0);
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof());
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "responses differ";
  EXPECT_OK(idle.ExpectEof());
  client.Close();
  idle.Close();

  // New connections are refused from now on (one may still slip in while
  // the other reactor stops its listener; it is closed at once).
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<TestClient> late = TestClient::Connect(port, Deadline(absl::Seconds(5)));
        if (!late.ok()) return absl::StrContains(late.status().message(), "refused");
        EXPECT_OK(late->ExpectEof());
        return false;
      },
      Deadline()));

  const std::optional<int> exit_code = gateway->Wait(Deadline());
  ASSERT_TRUE(exit_code.has_value()) << "gateway did not exit";
  EXPECT_EQ(*exit_code, 0);
  const std::string err = gateway->Log();
  EXPECT_TRUE(absl::StrContains(err, signo == SIGTERM ? "SIGTERM received" : "SIGINT received")) << err;
  EXPECT_TRUE(absl::StrContains(err, "gateway: stopped")) << err;
  EXPECT_TRUE(ConnectRefused(port));
}

INSTANTIATE_TEST_SUITE_P(Signals, GracefulStopTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "SIGTERM" : "SIGINT");
                         });

TEST(GatewayProcessTest, DrainTimeoutBoundsShutdownWithAClientThatNeverReads) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       StartGateway({"--listen=127.0.0.1:0", "--reactors=1", "--drain_timeout=300ms"}));
  const int port = ServingPort(*gateway);
  ASSERT_GT(port, 0) << gateway->Log();
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(port));
  ASSERT_OK(client.RoundTrip("x"));
  std::mt19937_64 rng(10);
  const std::string frame = Frame(RandomBytes(rng, 99999));
  std::string flood;
  for (int i = 0; i < 100; ++i) flood += frame;
  std::thread writer([&] { (void)client.WriteAll(flood, Deadline()); });
  // Stuck: the server stopped reading (its output is full), so our bytes
  // stay unacknowledged.
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<int> unacked = client.UnackedBytes();
    return unacked.ok() && *unacked > 0;
  }));
  ASSERT_EQ(kill(gateway->pid(), SIGTERM), 0);
  const std::optional<int> exit_code = gateway->Wait(Deadline());
  ASSERT_TRUE(exit_code.has_value()) << "gateway did not exit";
  EXPECT_EQ(*exit_code, 0);
  // The client's connection was closed by the deadline: the writer ends.
  writer.join();
  EXPECT_TRUE(ConnectRefused(port));
}

TEST(GatewayProcessTest, BusyPortIsOneLineAndExitOne) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket holder, ListenOnLoopback(1));
  const int port = holder.port();

  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, StartGateway({absl::StrCat("--listen=127.0.0.1:", port)}));
  const std::optional<int> exit_code = gateway->Wait(Deadline());
  holder.Close();
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_EQ(*exit_code, 1);
  const std::string err = gateway->Log();
  const std::vector<std::string> lines = Lines(err);
  ASSERT_EQ(lines.size(), 1u) << err;
  EXPECT_TRUE(absl::StartsWith(lines[0], "gateway: ")) << err;
  EXPECT_TRUE(absl::StrContains(lines[0], "in use")) << err;
  EXPECT_TRUE(absl::StrContains(lines[0], absl::StrCat(port))) << err;
}

TEST(GatewayProcessTest, BadFlagValuesFailAtStart) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--trigger_mode=sideways"},
           {"--reactors=-1"},
           {"--idle_timeout=forever"},
           {"--idle_timeout=-5s"},
           {"--max_connections=-1"},
           {"--high_water_bytes=10"},
           {"--low_water_bytes=999999", "--high_water_bytes=65536"},
           {"--read_budget=0"},
           {"--listen=nonsense"},
           {"--listen=127.0.0.1:70000"},
           {"--no_such_flag=1"},
       }) {
    const std::string name = absl::StrJoin(args, " ");
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, StartGateway(args));
    const std::optional<int> exit_code = gateway->Wait(Deadline());
    ASSERT_TRUE(exit_code.has_value()) << name << ": still running";
    EXPECT_EQ(*exit_code, 1) << name;
    const std::string err = gateway->Log();
    EXPECT_EQ(Lines(err).size(), 1u) << name << ":\n" << err;
  }
}

TEST(GatewayProcessTest, OurOwnValidationIsOneLineAndExitOne) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--reactors=-1"}, {"--read_budget=0"}, {"--listen=nonsense"}, {"--max_connections=-1"}}) {
    const std::string name = absl::StrJoin(args, " ");
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, StartGateway(args));
    const std::optional<int> exit_code = gateway->Wait(Deadline());
    ASSERT_TRUE(exit_code.has_value()) << name;
    EXPECT_EQ(*exit_code, 1) << name;
    const std::string err = gateway->Log();
    const std::vector<std::string> lines = Lines(err);
    ASSERT_EQ(lines.size(), 1u) << name << ":\n" << err;
    EXPECT_TRUE(absl::StartsWith(lines[0], "gateway: ")) << err;
  }
}

TEST(GatewayProcessTest, BadUpstreamFlagsAreOneLineNamingTheFlagAndExitOne) {
  struct Case {
    std::vector<std::string> args;
    std::string names;  // what the line must contain
  };
  for (const Case& c : std::vector<Case>{
           {{"--upstream=nonsense"}, "--upstream: backend \"nonsense\": expected host:port"},
           {{"--upstream=127.0.0.1:1=0"}, "the weight must be 1..1000"},
           {{"--upstream=127.0.0.1:1=1001"}, "the weight must be 1..1000"},
           {{"--upstream=127.0.0.1:70000"}, "the port must be 1..65535"},
           {{"--upstream=127.0.0.1:1,127.0.0.1:1"}, "is listed twice"},
           {{"--upstream=127.0.0.1:1", "--io_model=blocking"}, "--upstream needs an event-loop IO model"},
           {{"--upstream=127.0.0.1:1", "--upstream_connections=0"}, "--upstream_connections must be 1..8"},
           {{"--upstream=127.0.0.1:1", "--upstream_timeout=0s"}, "--upstream_timeout must be > 0"},
           {{"--upstream=127.0.0.1:1", "--upstream_max_inflight=0"}, "--upstream_max_inflight must be >= 1"},
           {{"--upstream=127.0.0.1:1", "--upstream_probe_payload="}, "--upstream_probe_payload must be 1..99999"},
           {{"--upstream_lb=hash"}, "--upstream_lb applies to upstream mode only"},
           {{"--upstream=127.0.0.1:1", "--upstream_lb=random"}, "upstream_lb"},
           {{"--upstream=127.0.0.1:1", "--upstream_error=maybe"}, "upstream_error"},
       }) {
    const std::string name = absl::StrJoin(c.args, " ");
    const auto [code, err] = RunToExit(c.args);
    EXPECT_EQ(code, 1) << name;
    const std::vector<std::string> lines = Lines(err);
    ASSERT_EQ(lines.size(), 1u) << name << ":\n" << err;
    EXPECT_TRUE(absl::StrContains(lines[0], c.names)) << name << ":\n" << err;
  }
}

TEST(GatewayProcessTest, UpstreamModeProxiesToABackendProcessAndSaysSo) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> backend, StartGateway({"--listen=127.0.0.1:0", "--reactors=1"}));
  const int backend_port = ServingPort(*backend);
  ASSERT_GT(backend_port, 0) << backend->Log();
  const std::string address = absl::StrCat("127.0.0.1:", backend_port);
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> proxy,
                       StartGateway({"--listen=127.0.0.1:0", "--reactors=2", absl::StrCat("--upstream=", address, "=3"),
                                     "--upstream_lb=least_inflight"}));
  const int port = ServingPort(*proxy);
  ASSERT_GT(port, 0) << proxy->Log();
  const std::string log = proxy->Log();
  EXPECT_TRUE(absl::StrContains(log, absl::StrCat("gateway: upstream mode: 1 backend(s) (", address,
                                                  " weight 3), lb least_inflight, 1 connection(s) per backend per "
                                                  "reactor, timeout 5s, errors as the empty frame\n")))
      << log;
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(port));
  ASSERT_OK_AND_ASSIGN(const std::string response, client.RoundTrip("proxied"));
  EXPECT_EQ(response, "deixorp");
  client.Close();
  EXPECT_EQ(proxy->Stop(), 0);
  EXPECT_EQ(backend->Stop(), 0);
}

TEST(GatewayProcessTest, HelpListsTheFlags) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, StartGateway({"--help"}));
  const std::optional<int> exit_code = gateway->Wait(Deadline());
  ASSERT_TRUE(exit_code.has_value());
  EXPECT_LT(*exit_code, 128);
  const std::string out = gateway->Log();
  for (absl::string_view flag : {"--listen",
                                 "--reactors",
                                 "--trigger_mode",
                                 "--max_connections",
                                 "--idle_timeout",
                                 "--drain_timeout",
                                 "--high_water_bytes",
                                 "--low_water_bytes",
                                 "--read_budget",
                                 "--upstream",
                                 "--upstream_connections",
                                 "--upstream_lb",
                                 "--upstream_error",
                                 "--upstream_timeout",
                                 "--upstream_connect_timeout",
                                 "--upstream_max_inflight",
                                 "--upstream_max_pending",
                                 "--upstream_probe_interval",
                                 "--upstream_rise",
                                 "--upstream_fall",
                                 "--upstream_eject_after",
                                 "--upstream_eject_backoff",
                                 "--upstream_probe_payload"}) {
    EXPECT_TRUE(absl::StrContains(out, flag)) << flag << " missing from --help:\n" << out;
  }
}

TEST(GatewayProcessTest, VersionIsOneLineAndExitZero) {
  const auto [code, out] = RunToExit({"--version"});
  EXPECT_EQ(code, 0);
  const std::vector<std::string> lines = Lines(out);
  ASSERT_EQ(lines.size(), 1u) << out;
  // gateway 0.2.0 (revision abc123, Release build, GNU-12.2.0)
  const std::vector<std::string> words = absl::StrSplit(lines[0], ' ');
  ASSERT_EQ(words.size(), 7u) << out;
  EXPECT_EQ(words[0], "gateway");
  const std::vector<std::string> version = absl::StrSplit(words[1], '.');
  ASSERT_EQ(version.size(), 3u) << out;
  for (const std::string& part : version) {
    int number = -1;
    EXPECT_TRUE(absl::SimpleAtoi(part, &number)) << out;
  }
  EXPECT_EQ(words[2], "(revision");
  EXPECT_TRUE(absl::EndsWith(words[3], ",")) << out;
  EXPECT_EQ(words[5], "build,");
  EXPECT_TRUE(absl::EndsWith(words[6], ")")) << out;
  EXPECT_TRUE(absl::StrContains(words[6], "-")) << out;  // compiler-version
  EXPECT_FALSE(absl::StrContains(out, "NDEBUG")) << out;
}

TEST(GatewayProcessTest, HelpListsOurFlagsWithoutBuildPaths) {
  const auto [code, out] = RunToExit({"--help"});
  EXPECT_EQ(code, 1);  // Abseil's --help exit status
  for (const char* flag :
       {"--listen (", "--control_listen (", "--metrics_listen (", "--reactors (", "--drain_timeout ("}) {
    EXPECT_TRUE(absl::StrContains(out, flag)) << flag << " missing:\n" << out;
  }
  EXPECT_TRUE(absl::StrContains(out, "Flags from gateway:")) << out;
  EXPECT_FALSE(absl::StrContains(out, GATEWAY_SOURCE_DIR)) << out;
  EXPECT_FALSE(absl::StrContains(out, ".cc")) << out;
  EXPECT_FALSE(absl::StrContains(out, "--flagfile")) << out;  // Abseil's own: --helpfull only
}

TEST(GatewayProcessTest, ReadyLineCarriesEveryPort) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       StartGateway({"--listen=127.0.0.1:0", "--reactors=1", "--control_listen=127.0.0.1:0",
                                     "--metrics_listen=127.0.0.1:0"}));
  const std::optional<std::string> json = WaitForReadyLine(*gateway, Deadline());
  ASSERT_TRUE(json.has_value()) << gateway->Log();
  int ports[3];
  const char* keys[3] = {"data_port", "control_port", "metrics_port"};
  for (int i = 0; i < 3; ++i) {
    ports[i] = PortIn(*json, keys[i]);
    EXPECT_GT(ports[i], 0) << keys[i] << " in " << *json;
  }
  // Each is the port the human lines name too.
  const std::string all = gateway->Log();
  EXPECT_TRUE(absl::StrContains(all, absl::StrCat("serving 127.0.0.1:0 (port ", ports[0], ")"))) << all;
  EXPECT_TRUE(absl::StrContains(all, absl::StrCat("control plane on 127.0.0.1:0 (port ", ports[1], ","))) << all;
  EXPECT_TRUE(absl::StrContains(all, absl::StrCat("(port ", ports[2], ")"))) << all;
  EXPECT_EQ(gateway->Stop(), 0);
}

TEST(GatewayProcessTest, ReadyLineHasZeroForServersThatAreOff) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       StartGateway({"--listen=127.0.0.1:0", "--reactors=1"}));  // control and metrics off
  const std::optional<std::string> json = WaitForReadyLine(*gateway, Deadline());
  ASSERT_TRUE(json.has_value()) << gateway->Log();
  EXPECT_GT(PortIn(*json, "data_port"), 0) << *json;
  EXPECT_EQ(PortIn(*json, "control_port"), 0) << *json;
  EXPECT_EQ(PortIn(*json, "metrics_port"), 0) << *json;
  EXPECT_EQ(gateway->Stop(), 0);
}

}  // namespace
}  // namespace gateway::testing
