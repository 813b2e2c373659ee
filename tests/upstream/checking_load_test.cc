// CheckingLoad checks what it claims to: against a gateway in its default
// mode every response is right; against servers that answer wrongly each
// kind of wrong answer is reported (duplicate, bad header, truncation,
// reset), and the empty frame counts as an error response only in the
// empty-frame error mode.
#include <memory>

#include "absl/strings/match.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"
#include "tests/upstream/checking_load.h"
#include "tests/upstream/garbage_backend.h"

namespace gateway::testing {
namespace {

LoadOptions Options(int port, UpstreamErrorMode mode = UpstreamErrorMode::kEmptyFrame) {
  LoadOptions options;
  options.port = port;
  options.connections = 4;
  options.depth = 8;
  options.error_mode = mode;
  return options;
}

TEST(CheckingLoadTest, EveryResponseOfAGatewayIsRight) {
  GatewayOptions gw_options;
  gw_options.reactors = 2;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Gateway> gw, StartTestGateway(gw_options));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<CheckingLoad> load, CheckingLoad::Start(Options(gw->port())));
  EXPECT_TRUE(load->AwaitAnswered(5000, Deadline()));
  const LoadReport report = load->Finish(Deadline());
  EXPECT_TRUE(report.violations.empty()) << Describe(report);
  EXPECT_TRUE(report.drained);
  EXPECT_EQ(report.ok, report.sent);
  EXPECT_GE(report.ok, 5000u);
  EXPECT_EQ(report.errors, 0u);
  EXPECT_TRUE(WaitUntil([&] { return SumStat(*gw, &ReactorStats::frames_out) == report.sent; }));
  gw->Shutdown(absl::Seconds(5));
}

// Runs a load against `garbage` until it sees a violation or answers stop.
LoadReport RunAgainst(Garbage garbage, UpstreamErrorMode mode = UpstreamErrorMode::kEmptyFrame) {
  absl::StatusOr<std::unique_ptr<GarbageBackend>> server = GarbageBackend::Start(garbage);
  EXPECT_OK(server);
  if (!server.ok()) return {};
  absl::StatusOr<std::unique_ptr<CheckingLoad>> load = CheckingLoad::Start(Options((*server)->port(), mode));
  EXPECT_OK(load);
  if (!load.ok()) return {};
  EXPECT_TRUE(WaitUntil([&] { return (*load)->violations() > 0 || (*load)->answered() >= 1000; }));
  return (*load)->Finish(Deadline(absl::Seconds(2)));
}

bool Mentions(const LoadReport& report, absl::string_view what) {
  for (const std::string& v : report.violations) {
    if (absl::StrContains(v, what)) return true;
  }
  return false;
}

TEST(CheckingLoadTest, ReportsADuplicatedResponse) {
  const LoadReport report = RunAgainst(Garbage::kDuplicate);
  EXPECT_TRUE(Mentions(report, "expected")) << Describe(report);
}

TEST(CheckingLoadTest, ReportsABadHeader) {
  const LoadReport report = RunAgainst(Garbage::kNotDigits);
  EXPECT_TRUE(Mentions(report, "bad response header")) << Describe(report);
}

TEST(CheckingLoadTest, ReportsATruncatedResponse) {
  const LoadReport report = RunAgainst(Garbage::kTruncated);
  EXPECT_TRUE(Mentions(report, "EOF inside a response")) << Describe(report);
}

TEST(CheckingLoadTest, ReportsAReset) {
  const LoadReport report = RunAgainst(Garbage::kReset);
  EXPECT_GE(report.resets, 1u) << Describe(report);
  EXPECT_FALSE(report.violations.empty());
}

TEST(CheckingLoadTest, EmptyFrameIsAnErrorResponseOnlyInEmptyMode) {
  const LoadReport empty_mode = RunAgainst(Garbage::kEmptyFrame);
  EXPECT_TRUE(empty_mode.violations.empty()) << Describe(empty_mode);
  EXPECT_GE(empty_mode.errors, 1000u);
  EXPECT_EQ(empty_mode.ok, 0u);
  const LoadReport close_mode = RunAgainst(Garbage::kEmptyFrame, UpstreamErrorMode::kClose);
  EXPECT_TRUE(Mentions(close_mode, "close mode")) << Describe(close_mode);
}

}  // namespace
}  // namespace gateway::testing
