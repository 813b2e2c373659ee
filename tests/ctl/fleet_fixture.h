// A fleet for gatewayctl's tests: N in-process gateways, each with its own
// control server on an ephemeral loopback port and a known number of client
// connections, and a runner for the built gatewayctl binary (its path comes
// from CMake as GATEWAYCTL_BINARY) with stdout and stderr kept apart.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "control/control_server.h"
#include "gateway/gateway.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

namespace gateway::ctl::testing {

using namespace ::gateway::testing;  // NOLINT(build/namespaces): test-only namespace

// As in tests/control/control_fixture.h: Abseil's deadlock detection is
// uninstrumented, and TSan would report it; off before any gRPC thread.
inline const bool kMutexDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

// gatewayctl's result. Plain value.
struct CtlRun {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// The owning test's thread only.
class FleetFixture : public ::testing::Test {
 protected:
  struct Member {
    std::unique_ptr<Gateway> gw;
    std::unique_ptr<control::ControlServer> server;
    int control_port = 0;
    std::vector<TestClient> clients;
    std::string target() const { return absl::StrCat("127.0.0.1:", control_port); }
  };

  // Starts one gateway per entry of `clients` (added to members_), each with
  // that many client connections, all listed by their gateway before this
  // returns.
  void StartFleet(const std::vector<int>& clients, control::ControlServerOptions control_options = {},
                  const GatewayOptions& gateway_options = {}) {
    for (const int n : clients) {
      Member m;
      absl::StatusOr<std::unique_ptr<Gateway>> gw = StartTestGateway(gateway_options);
      ASSERT_TRUE(gw.ok()) << gw.status();
      m.gw = *std::move(gw);
      control_options.listen_address = "127.0.0.1:0";
      absl::StatusOr<std::unique_ptr<control::ControlServer>> server =
          control::StartControlServer(m.gw.get(), control_options);
      ASSERT_TRUE(server.ok()) << server.status();
      m.server = *std::move(server);
      m.control_port = m.server->port();
      members_.push_back(std::move(m));
      for (int i = 0; i < n; ++i) ASSERT_NO_FATAL_FAILURE(AddClient(members_.back()));
    }
  }

  // Opens one more client on `m` and waits until its gateway lists it.
  void AddClient(Member& m) {
    absl::StatusOr<TestClient> client = TestClient::Connect(m.gw->port());
    ASSERT_TRUE(client.ok()) << client.status();
    ASSERT_TRUE(FindConnection(*m.gw, *client).ok());
    m.clients.push_back(*std::move(client));
  }

  // Stops member `i`'s control server (its gateway keeps serving).
  void StopControl(size_t i) {
    members_[i].server->Shutdown(absl::Seconds(5));
    members_[i].server.reset();
  }

  void TearDown() override {
    for (Member& m : members_) {
      m.clients.clear();
      if (m.server) m.server->Shutdown(absl::Seconds(5));
      if (m.gw) m.gw->Shutdown(absl::Seconds(5));
    }
  }

  std::string TargetsFlag() const {
    std::vector<std::string> targets;
    for (const Member& m : members_) targets.push_back(m.target());
    return absl::StrCat("--targets=", absl::StrJoin(targets, ","));
  }

  // Runs gatewayctl with `args` (bounded: 60 s).
  CtlRun Ctl(const std::vector<std::string>& args) {
    TempDir dir;
    std::string command = absl::StrCat("exec '", GATEWAYCTL_BINARY, "'");
    for (const std::string& arg : args) absl::StrAppend(&command, " '", arg, "'");
    absl::StrAppend(&command, " 2>'", dir.File("err"), "'");
    absl::StatusOr<CommandResult> result = RunCommand({"/bin/sh", "-c", command}, "", absl::Seconds(60));
    EXPECT_TRUE(result.ok()) << result.status();
    CtlRun run;
    if (!result.ok()) return run;
    run.exit_code = result->exit_code;
    run.out = result->output;
    run.err = ReadFileOrEmpty(dir.File("err"));
    return run;
  }

  // `json` parsed (empty Struct and a test failure if it does not parse).
  static google::protobuf::Struct ParseJson(const std::string& json) {
    google::protobuf::Struct parsed;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
    return parsed;
  }

  // The stderr lines of a run.
  static std::vector<std::string> Lines(const std::string& text) {
    return absl::StrSplit(text, '\n', absl::SkipEmpty());
  }

  std::vector<Member> members_;
};

}  // namespace gateway::ctl::testing
