// io_uring refused for real: the gateway binary started under
// deny_io_uring (a seccomp filter that makes io_uring_setup/enter/register
// fail, as container default profiles do). --io_model=io_uring must exit 1
// with one line naming the errno and the fix; epoll must run unharmed.
// The live-switch refusal (SetIoModel over gRPC) is in
// io_uring_denied_switch_test.cc.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

#ifndef GATEWAY_BINARY
#error "GATEWAY_BINARY must name the gateway executable"
#endif
#ifndef DENY_IO_URING_BINARY
#error "DENY_IO_URING_BINARY must name the deny_io_uring launcher"
#endif

namespace gateway::testing {
namespace {

// perl-base is part of every Debian system: it makes the raw syscall
// (io_uring_setup(1, zeroed params), number 425 on x86_64 and aarch64) and
// prints "ok" or the errno number.
const std::vector<std::string> kTryIoUringSetup = {
    "perl", "-e", "my $p = \"\\0\" x 120; my $r = syscall(425, 1, $p); print $r < 0 ? $! + 0 : \"ok\""};

std::vector<std::string> Denied(const std::vector<std::string>& argv, const std::string& errno_flag = "") {
  std::vector<std::string> out = {DENY_IO_URING_BINARY};
  if (!errno_flag.empty()) out.push_back(errno_flag);
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// The gateway with the control plane and metrics off (their fixed default
// ports may be taken by parallel tests).
std::vector<std::string> GatewayArgv(const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {GATEWAY_BINARY, "--listen=127.0.0.1:0", "--reactors=1",
                                   "--control_listen=", "--metrics_listen="};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

std::vector<std::string> Lines(const std::string& text) { return absl::StrSplit(text, '\n', absl::SkipEmpty()); }

TEST(DenyIoUringTest, TheLauncherRefusesIoUringSetupWithTheErrnoAsked) {
  ASSERT_OK_AND_ASSIGN(CommandResult eperm, RunCommand(Denied(kTryIoUringSetup), "", absl::Seconds(20)));
  EXPECT_EQ(eperm.exit_code, 0) << eperm.output;
  EXPECT_EQ(eperm.output, "1");  // EPERM, as Docker's default profile
  ASSERT_OK_AND_ASSIGN(CommandResult enosys,
                       RunCommand(Denied(kTryIoUringSetup, "--errno=ENOSYS"), "", absl::Seconds(20)));
  EXPECT_EQ(enosys.exit_code, 0) << enosys.output;
  EXPECT_EQ(enosys.output, "38");  // ENOSYS, as Podman's
  ASSERT_OK_AND_ASSIGN(CommandResult bad, RunCommand(Denied({"true"}, "--errno=EINVAL"), "", absl::Seconds(20)));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

TEST(IoUringDeniedTest, IoUringAtStartIsOneLineWithTheErrnoAndTheFixAndExitOne) {
  ASSERT_OK_AND_ASSIGN(CommandResult run,
                       RunCommand(Denied(GatewayArgv({"--io_model=io_uring"})), "", absl::Seconds(30)));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  const std::vector<std::string> lines = Lines(run.output);
  ASSERT_EQ(lines.size(), 1u) << run.output;
  const std::string& line = lines[0];
  EXPECT_TRUE(absl::StartsWith(line, "gateway: ")) << line;
  EXPECT_TRUE(absl::StrContains(line, "io_uring")) << line;
  EXPECT_TRUE(absl::StrContains(line, "EPERM")) << line;
  // The fix: the seccomp profile (deploy/seccomp/io_uring.json).
  EXPECT_TRUE(absl::StrContains(line, "seccomp")) << line;
  EXPECT_FALSE(absl::StrContains(line, "ready")) << line;
}

TEST(IoUringDeniedTest, PodmansEnosysAtStartIsOneLineWithThatErrnoAndExitOne) {
  ASSERT_OK_AND_ASSIGN(CommandResult run, RunCommand(Denied(GatewayArgv({"--io_model=io_uring"}), "--errno=ENOSYS"), "",
                                                     absl::Seconds(30)));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  const std::vector<std::string> lines = Lines(run.output);
  ASSERT_EQ(lines.size(), 1u) << run.output;
  EXPECT_TRUE(absl::StartsWith(lines[0], "gateway: ")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "io_uring")) << lines[0];
  EXPECT_TRUE(absl::StrContains(lines[0], "ENOSYS")) << lines[0];
}

TEST(IoUringDeniedTest, EpollRunsUnharmedUnderTheFilter) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway, Subprocess::Start(Denied(GatewayArgv({}))));
  const int port = WaitForReadyPort(*gateway, "data_port", Deadline());
  ASSERT_GT(port, 0) << gateway->Log();
  {
    ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(port));
    ASSERT_OK_AND_ASSIGN(const std::string reply, client.RoundTrip("abc"));
    EXPECT_EQ(reply, "cba");
  }  // closed, so the drain below has nothing to wait for
  EXPECT_EQ(gateway->Stop(), 0) << gateway->Log();
}

}  // namespace
}  // namespace gateway::testing
