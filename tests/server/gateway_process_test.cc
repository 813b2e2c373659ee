// Tests of the real gateway binary as a process: graceful SIGTERM/SIGINT
// (every frame already sent is answered, then EOF, exit status 0, the port
// closed), the drain timeout, and start-up errors (busy port, bad flags: one
// line on stderr, non-zero exit).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/gateway/test_client.h"

#ifndef GATEWAY_BINARY
#error "GATEWAY_BINARY must name the gateway executable"
#endif

namespace gateway {
namespace {

using ::gateway::testing::Deadline;
using ::gateway::testing::Frame;
using ::gateway::testing::RandomBytes;
using ::gateway::testing::ReversedFrame;
using ::gateway::testing::TestClient;
using ::gateway::testing::WaitUntil;

// The ready line's prefix; a JSON object of the three ports follows.
constexpr absl::string_view kReadyPrefix = "gateway: ready ";

// The value of `"key":N` in a flat JSON object of integers; -1 if absent.
int PortIn(absl::string_view json, absl::string_view key) {
  const std::string quoted = absl::StrCat("\"", key, "\":");
  const size_t at = json.find(quoted);
  if (at == absl::string_view::npos) return -1;
  absl::string_view rest = json.substr(at + quoted.size());
  rest = rest.substr(0, rest.find_first_of(",}"));
  int port = -1;
  return absl::SimpleAtoi(rest, &port) ? port : -1;
}

// The gateway binary running as a child process, its stderr (and stdout,
// where only --help writes) on a pipe.
// Killed (SIGKILL) on destruction if still running. Test-thread only.
class GatewayProcess {
 public:
  explicit GatewayProcess(std::vector<std::string> args) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) return;
    // The control plane and metrics listen on fixed default ports, which other
    // tests running in parallel may hold: off unless a test asks for them
    // (a later flag wins).
    std::vector<std::string> argv_storage = {GATEWAY_BINARY, "--control_listen=", "--metrics_listen="};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Child: die with the test; stderr to the pipe.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(pipe_fds[1], STDERR_FILENO);
      dup2(pipe_fds[1], STDOUT_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(pipe_fds[1]);
    stderr_fd_ = pipe_fds[0];
  }

  ~GatewayProcess() {
    if (pid_ > 0 && !status_.has_value()) {
      kill(pid_, SIGKILL);
      int status;
      waitpid(pid_, &status, 0);
    }
    if (stderr_fd_ >= 0) close(stderr_fd_);
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Returns the next line of stderr, without its newline; nullopt at EOF or
  // when `deadline` passes.
  std::optional<std::string> ReadLine(absl::Time deadline) {
    for (;;) {
      const size_t newline = buffered_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffered_.substr(0, newline);
        buffered_.erase(0, newline + 1);
        all_ += line + "\n";
        return line;
      }
      if (!Fill(deadline)) return std::nullopt;
    }
  }

  // Reads stderr to EOF (the process has exited); returns all of it,
  // including lines already returned by ReadLine.
  std::string ReadAll(absl::Time deadline) {
    while (Fill(deadline)) {
    }
    all_ += buffered_;
    buffered_.clear();
    return all_;
  }

  // Reads stderr up to the line `gateway: ready {"data_port":N,...}` and
  // returns the data port from it; -1 if no such line comes.
  int ReadServingPort(absl::Time deadline) {
    while (std::optional<std::string> line = ReadLine(deadline)) {
      if (!absl::StartsWith(*line, kReadyPrefix)) continue;
      return PortIn(line->substr(kReadyPrefix.size()), "data_port");
    }
    return -1;
  }

  // Waits for the process to exit; returns its wait status, or nullopt if
  // `deadline` passes first.
  std::optional<int> Wait(absl::Time deadline) {
    if (status_.has_value()) return status_;
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        status_ = status;
        return status_;
      }
      if (absl::Now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

 private:
  // Reads more of stderr; false at EOF or deadline.
  bool Fill(absl::Time deadline) {
    for (;;) {
      pollfd p{stderr_fd_, POLLIN, 0};
      const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
      if (left_ms <= 0) return false;
      const int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(left_ms, 1000)));
      if (rc < 0 && errno != EINTR) return false;
      if (rc <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(stderr_fd_, chunk, sizeof chunk);
      if (n > 0) {
        buffered_.append(chunk, static_cast<size_t>(n));
        return true;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }

  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::string buffered_;
  std::string all_;
  std::optional<int> status_;
};

bool ConnectRefused(int port) {
  absl::StatusOr<TestClient> client = TestClient::Connect(port, Deadline(absl::Seconds(5)));
  return !client.ok() && absl::StrContains(client.status().message(), "refused");
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

class GracefulStopTest : public ::testing::TestWithParam<int> {};  // the signal

TEST_P(GracefulStopTest, AnswersEverythingReceivedThenEofAndExitZero) {
  const int signo = GetParam();
  GatewayProcess gateway({"--listen=127.0.0.1:0", "--reactors=2", "--drain_timeout=20s"});
  ASSERT_TRUE(gateway.started());
  const int port = gateway.ReadServingPort(Deadline());
  ASSERT_GT(port, 0) << gateway.ReadAll(Deadline(absl::Seconds(1)));

  // An idle client, and one that has a round trip done (so it is accepted)
  // and then pipelines frames the server has received but maybe not read.
  absl::StatusOr<TestClient> idle = TestClient::Connect(port);
  ASSERT_TRUE(idle.ok()) << idle.status();
  ASSERT_TRUE(idle->RoundTrip("idle").ok());
  absl::StatusOr<TestClient> client = TestClient::Connect(port);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::StatusOr<std::string> first = client->RoundTrip("first");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "tsrif");
  std::mt19937_64 rng(9);
  std::string requests, expected;
  for (int i = 0; i < 200; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 1000);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_TRUE(client->WriteAll(requests).ok());
  // Every byte has reached the server's kernel before the signal.
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<int> unacked = client->UnackedBytes();
    return unacked.ok() && *unacked == 0;
  }));

  ASSERT_EQ(kill(gateway.pid(), signo), 0);
  absl::StatusOr<std::string> got = client->ReadUntilEof();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->size(), expected.size());
  EXPECT_TRUE(*got == expected) << "responses differ";
  EXPECT_TRUE(idle->ExpectEof().ok());
  client->Close();
  idle->Close();

  // New connections are refused from now on (one may still slip in while
  // the other reactor stops its listener; it is closed at once).
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<TestClient> late = TestClient::Connect(port, Deadline(absl::Seconds(5)));
        if (!late.ok()) return absl::StrContains(late.status().message(), "refused");
        EXPECT_TRUE(late->ExpectEof().ok());
        return false;
      },
      Deadline()));

  const std::optional<int> status = gateway.Wait(Deadline());
  ASSERT_TRUE(status.has_value()) << "gateway did not exit";
  EXPECT_EQ(ExitCode(*status), 0);
  const std::string err = gateway.ReadAll(Deadline());
  EXPECT_TRUE(absl::StrContains(err, signo == SIGTERM ? "SIGTERM received" : "SIGINT received")) << err;
  EXPECT_TRUE(absl::StrContains(err, "gateway: stopped")) << err;
  EXPECT_TRUE(ConnectRefused(port));
}

INSTANTIATE_TEST_SUITE_P(Signals, GracefulStopTest, ::testing::Values(SIGTERM, SIGINT),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(info.param == SIGTERM ? "SIGTERM" : "SIGINT");
                         });

TEST(GatewayProcessTest, DrainTimeoutBoundsShutdownWithAClientThatNeverReads) {
  GatewayProcess gateway({"--listen=127.0.0.1:0", "--reactors=1", "--drain_timeout=300ms"});
  ASSERT_TRUE(gateway.started());
  const int port = gateway.ReadServingPort(Deadline());
  ASSERT_GT(port, 0);
  absl::StatusOr<TestClient> client = TestClient::Connect(port);
  ASSERT_TRUE(client.ok()) << client.status();
  ASSERT_TRUE(client->RoundTrip("x").ok());
  std::mt19937_64 rng(10);
  const std::string frame = Frame(RandomBytes(rng, 99999));
  std::string flood;
  for (int i = 0; i < 100; ++i) flood += frame;
  std::thread writer([&] { (void)client->WriteAll(flood, Deadline()); });
  // Stuck: the server stopped reading (its output is full), so our bytes
  // stay unacknowledged.
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<int> unacked = client->UnackedBytes();
    return unacked.ok() && *unacked > 0;
  }));
  ASSERT_EQ(kill(gateway.pid(), SIGTERM), 0);
  const std::optional<int> status = gateway.Wait(Deadline());
  ASSERT_TRUE(status.has_value()) << "gateway did not exit";
  EXPECT_EQ(ExitCode(*status), 0);
  // The client's connection was closed by the deadline: the writer ends.
  writer.join();
  EXPECT_TRUE(ConnectRefused(port));
}

TEST(GatewayProcessTest, BusyPortIsOneLineAndExitOne) {
  const int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(holder, 1), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  GatewayProcess gateway({absl::StrCat("--listen=127.0.0.1:", port)});
  ASSERT_TRUE(gateway.started());
  const std::optional<int> status = gateway.Wait(Deadline());
  close(holder);
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ExitCode(*status), 1);
  const std::string err = gateway.ReadAll(Deadline());
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
    GatewayProcess gateway(args);
    ASSERT_TRUE(gateway.started());
    const std::optional<int> status = gateway.Wait(Deadline());
    ASSERT_TRUE(status.has_value()) << name << ": still running";
    EXPECT_EQ(ExitCode(*status), 1) << name;
    const std::string err = gateway.ReadAll(Deadline());
    EXPECT_EQ(Lines(err).size(), 1u) << name << ":\n" << err;
  }
}

TEST(GatewayProcessTest, OurOwnValidationIsOneLineAndExitOne) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--reactors=-1"}, {"--read_budget=0"}, {"--listen=nonsense"}, {"--max_connections=-1"}}) {
    const std::string name = absl::StrJoin(args, " ");
    GatewayProcess gateway(args);
    ASSERT_TRUE(gateway.started());
    const std::optional<int> status = gateway.Wait(Deadline());
    ASSERT_TRUE(status.has_value()) << name;
    EXPECT_EQ(ExitCode(*status), 1) << name;
    const std::string err = gateway.ReadAll(Deadline());
    const std::vector<std::string> lines = Lines(err);
    ASSERT_EQ(lines.size(), 1u) << name << ":\n" << err;
    EXPECT_TRUE(absl::StartsWith(lines[0], "gateway: ")) << err;
  }
}

TEST(GatewayProcessTest, HelpListsTheFlags) {
  GatewayProcess gateway({"--help"});
  ASSERT_TRUE(gateway.started());
  const std::optional<int> status = gateway.Wait(Deadline());
  ASSERT_TRUE(status.has_value());
  EXPECT_LT(ExitCode(*status), 128);
  const std::string out = gateway.ReadAll(Deadline());
  for (absl::string_view flag : {"--listen", "--reactors", "--trigger_mode", "--max_connections", "--idle_timeout",
                                 "--drain_timeout", "--high_water_bytes", "--low_water_bytes", "--read_budget"}) {
    EXPECT_TRUE(absl::StrContains(out, flag)) << flag << " missing from --help:\n" << out;
  }
}

}  // namespace
}  // namespace gateway

namespace gateway {
namespace {

// Runs the binary with `args` (control plane and metrics off) to its exit;
// returns its exit code and everything it wrote.
std::pair<int, std::string> RunToExit(std::vector<std::string> args) {
  GatewayProcess gateway(std::move(args));
  EXPECT_TRUE(gateway.started());
  const std::optional<int> status = gateway.Wait(Deadline());
  EXPECT_TRUE(status.has_value());
  return {status.has_value() ? ExitCode(*status) : -1, gateway.ReadAll(Deadline())};
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
  for (const char* flag : {"--listen (", "--control_listen (", "--metrics_listen (", "--reactors (",
                           "--drain_timeout ("}) {
    EXPECT_TRUE(absl::StrContains(out, flag)) << flag << " missing:\n" << out;
  }
  EXPECT_TRUE(absl::StrContains(out, "Flags from gateway:")) << out;
  EXPECT_FALSE(absl::StrContains(out, GATEWAY_SOURCE_DIR)) << out;
  EXPECT_FALSE(absl::StrContains(out, ".cc")) << out;
  EXPECT_FALSE(absl::StrContains(out, "--flagfile")) << out;  // Abseil's own: --helpfull only
}

TEST(GatewayProcessTest, ReadyLineCarriesEveryPort) {
  GatewayProcess gateway({"--listen=127.0.0.1:0", "--reactors=1", "--control_listen=127.0.0.1:0",
                          "--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(gateway.started());
  std::optional<std::string> ready;
  while (std::optional<std::string> line = gateway.ReadLine(Deadline())) {
    if (absl::StartsWith(*line, kReadyPrefix)) {
      ready = *line;
      break;
    }
  }
  ASSERT_TRUE(ready.has_value()) << gateway.ReadAll(Deadline(absl::Seconds(1)));
  const std::string json = ready->substr(kReadyPrefix.size());
  int ports[3];
  const char* keys[3] = {"data_port", "control_port", "metrics_port"};
  for (int i = 0; i < 3; ++i) {
    ports[i] = PortIn(json, keys[i]);
    EXPECT_GT(ports[i], 0) << keys[i] << " in " << json;
  }
  // Each is the port the human lines name too.
  const std::string all = gateway.ReadAll(Deadline(absl::Milliseconds(1)));
  EXPECT_TRUE(absl::StrContains(all, absl::StrCat("serving 127.0.0.1:0 (port ", ports[0], ")"))) << all;
  EXPECT_TRUE(absl::StrContains(all, absl::StrCat("control plane on 127.0.0.1:0 (port ", ports[1], ","))) << all;
  EXPECT_TRUE(absl::StrContains(all, absl::StrCat("(port ", ports[2], ")"))) << all;
  kill(gateway.pid(), SIGTERM);
  const std::optional<int> status = gateway.Wait(Deadline());
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ExitCode(*status), 0);
}

TEST(GatewayProcessTest, ReadyLineHasZeroForServersThatAreOff) {
  GatewayProcess gateway({"--listen=127.0.0.1:0", "--reactors=1"});  // control and metrics off
  ASSERT_TRUE(gateway.started());
  std::optional<std::string> ready;
  while (std::optional<std::string> line = gateway.ReadLine(Deadline())) {
    if (absl::StartsWith(*line, kReadyPrefix)) {
      ready = *line;
      break;
    }
  }
  ASSERT_TRUE(ready.has_value());
  const std::string json = ready->substr(kReadyPrefix.size());
  EXPECT_GT(PortIn(json, "data_port"), 0) << json;
  EXPECT_EQ(PortIn(json, "control_port"), 0) << json;
  EXPECT_EQ(PortIn(json, "metrics_port"), 0) << json;
  kill(gateway.pid(), SIGTERM);
  ASSERT_TRUE(gateway.Wait(Deadline()).has_value());
}

}  // namespace
}  // namespace gateway
