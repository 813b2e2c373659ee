// gateway-bench end to end: the real binary against an in-process gateway
// (closed loop, open loop, idle), and against deliberately wrong servers
// (a corrupted byte, an early EOF, nothing listening), which must make it exit
// non-zero with the right error counted. Timings are never asserted.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"

extern char** environ;

namespace {

struct BenchRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
  std::string json;    // the line starting with {"bench":
};

// Runs gateway-bench with `args`; kills it if it has not finished in 60 s.
// `on_output`, if set, sees the output so far after every read, with the pid.
BenchRun RunBench(const std::vector<std::string>& args,
                  const std::function<void(const std::string&, pid_t)>& on_output = nullptr) {
  std::vector<std::string> argv_storage = {GATEWAY_BENCH_PATH};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2];
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDERR_FILENO);
  pid_t pid = -1;
  BenchRun run;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << rc;
    return run;
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  char buf[4096];
  for (;;) {
    const int64_t left_ms = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left_ms <= 0) {
      ADD_FAILURE() << "gateway-bench did not finish in 60 s; output so far:\n" << run.output;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left_ms)) <= 0) continue;
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    run.output.append(buf, static_cast<size_t>(n));
    if (on_output) on_output(run.output, pid);
  }
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  for (absl::string_view line : absl::StrSplit(run.output, '\n')) {
    if (absl::StartsWith(line, "{\"bench\":")) run.json = std::string(line);
  }
  return run;
}

// The text after "key": in a flat-enough JSON line, up to , or }.
std::string JsonField(const std::string& json, const std::string& key) {
  const std::string needle = absl::StrCat("\"", key, "\":");
  const size_t at = json.find(needle);
  if (at == std::string::npos) return "<missing>";
  const size_t start = at + needle.size();
  const size_t end = json.find_first_of(",}", start);
  return json.substr(start, end - start);
}

double JsonNumber(const std::string& json, const std::string& key) {
  double v = -1;
  EXPECT_TRUE(absl::SimpleAtod(JsonField(json, key), &v)) << key << " in " << json;
  return v;
}

class GatewayBenchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    gateway::GatewayOptions options;
    options.listen_address = "127.0.0.1:0";
    options.reactors = 1;
    absl::StatusOr<std::unique_ptr<gateway::Gateway>> gw = gateway::Gateway::Create(options);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
    gw_->Start();
  }
  void TearDown() override {
    if (gw_) gw_->Shutdown(absl::Seconds(2));
  }
  std::string Port() const { return absl::StrCat("--port=", gw_->port()); }

  std::unique_ptr<gateway::Gateway> gw_;
};

TEST_F(GatewayBenchTest, ClosedLoopValidatesEveryResponseAndReportsJson) {
  const BenchRun run = RunBench({Port(), "--conns=4", "--pipeline=4", "--size=300", "--duration=1s",
                                 "--warmup=200ms", "--label=inproc", absl::StrCat("--server_pid=", getpid())});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  ASSERT_FALSE(run.json.empty()) << run.output;
  EXPECT_EQ(JsonField(run.json, "label"), "\"inproc\"");
  EXPECT_EQ(JsonField(run.json, "mode"), "\"closed\"");
  EXPECT_EQ(JsonField(run.json, "ok"), "true");
  EXPECT_EQ(JsonNumber(run.json, "established"), 4);
  EXPECT_EQ(JsonNumber(run.json, "size"), 300);
  EXPECT_EQ(JsonNumber(run.json, "total"), 0);  // errors
  EXPECT_GT(JsonNumber(run.json, "requests"), 0);
  EXPECT_GT(JsonNumber(run.json, "rps"), 0);
  EXPECT_GT(JsonNumber(run.json, "p99"), 0);
  EXPECT_GE(JsonNumber(run.json, "max"), JsonNumber(run.json, "p99"));
  EXPECT_GE(JsonNumber(run.json, "server_cpu_us_per_req"), 0);  // a number, not null
  // Requests the gateway answered: the 4 proofs, every measured request, plus
  // warmup and in-flight ones.
  uint64_t frames_out = 0;
  frames_out += gw_->reactor_stats(0).frames_out.Get();
  EXPECT_GE(frames_out, 4 + static_cast<uint64_t>(JsonNumber(run.json, "requests")));
}

TEST_F(GatewayBenchTest, OpenLoopMeasuresFromIntendedSendTimes) {
  const BenchRun run = RunBench({Port(), "--conns=3", "--rate=3000", "--pipeline=8", "--size=16",
                                 "--duration=1s", "--warmup=100ms"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonField(run.json, "mode"), "\"open\"");
  EXPECT_EQ(JsonNumber(run.json, "rate"), 3000);
  EXPECT_GT(JsonNumber(run.json, "requests"), 0);
  // At most the scheduled requests can complete (3000/s for ~1 s, plus slack
  // for the window's edges).
  EXPECT_LE(JsonNumber(run.json, "requests"), 3000 * 1.2);
  EXPECT_EQ(JsonField(run.json, "ok"), "true");
}

TEST_F(GatewayBenchTest, IdleModeProvesAndHoldsConnections) {
  const BenchRun run = RunBench({Port(), "--idle=50", "--duration=200ms", "--threads=2",
                                 absl::StrCat("--server_pid=", getpid())});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("idle: 50 of 50 connections established"), std::string::npos) << run.output;
  EXPECT_EQ(JsonField(run.json, "mode"), "\"idle\"");
  EXPECT_EQ(JsonNumber(run.json, "established"), 50);
  EXPECT_GT(JsonNumber(run.json, "rss_before"), 0);
  EXPECT_GT(JsonNumber(run.json, "rss_after"), 0);
  EXPECT_EQ(gw_->reactor_stats(0).frames_out.Get(), 50u);  // exactly one proof each
}

TEST_F(GatewayBenchTest, SigintEndsTheIdleHoldEarlyWithASummary) {
  bool signalled = false;
  const BenchRun run = RunBench({Port(), "--idle=20", "--duration=600s"}, [&](const std::string& out, pid_t pid) {
    if (!signalled && out.find("idle: 20 of 20") != std::string::npos) {
      kill(pid, SIGINT);
      signalled = true;
    }
  });
  ASSERT_TRUE(signalled) << run.output;
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonField(run.json, "interrupted"), "true");
  EXPECT_EQ(JsonNumber(run.json, "established"), 20);
  EXPECT_EQ(JsonNumber(run.json, "total"), 0);
}

TEST(GatewayBenchFlagsTest, BadFlagsExitWithStatus2) {
  EXPECT_EQ(RunBench({"--size=0"}).exit_code, 2);
  EXPECT_EQ(RunBench({"--pipeline=0"}).exit_code, 2);
  EXPECT_EQ(RunBench({"--size=100000"}).exit_code, 2);
}

TEST(GatewayBenchErrorsTest, NothingListeningIsAConnectError) {
  // A bound but not listening socket holds the port, so connecting is refused.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const BenchRun run = RunBench({absl::StrCat("--port=", ntohs(addr.sin_port)), "--conns=2", "--duration=100ms"});
  close(fd);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "connect"), 2);
  EXPECT_EQ(JsonField(run.json, "ok"), "false");
}

// A one-connection-at-a-time reverse server that misbehaves on purpose.
class WrongServer {
 public:
  enum class Fault { kCorruptByte, kEarlyEof };

  // Misbehaves on its `nth` response (1 = the first).
  WrongServer(Fault fault, int nth) : fault_(fault), nth_(nth) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~WrongServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }
  int faults() const { return faults_.load(); }

 private:
  // Waits (bounded by stop_) until `fd` is readable.
  bool WaitReadable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) > 0) return true;
    }
    return false;
  }
  bool ReadExactly(int fd, char* out, size_t n) {
    while (n > 0) {
      if (!WaitReadable(fd)) return false;
      const ssize_t got = recv(fd, out, n, 0);
      if (got <= 0) return false;
      out += got;
      n -= static_cast<size_t>(got);
    }
    return true;
  }
  void Serve() {
    while (WaitReadable(listen_fd_)) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int served = 0;
      std::string frame;
      for (;;) {
        char header[6] = {};
        if (!ReadExactly(fd, header, 5)) break;
        int n = 0;
        if (!absl::SimpleAtoi(header, &n) || n < 1) break;
        frame.assign(header, 5);
        frame.resize(5 + static_cast<size_t>(n));
        if (!ReadExactly(fd, frame.data() + 5, static_cast<size_t>(n))) break;
        std::reverse(frame.begin() + 5, frame.end());
        if (++served == nth_) {
          ++faults_;
          if (fault_ == Fault::kEarlyEof) break;
          frame[5 + static_cast<size_t>(n) / 2] ^= 0x20;  // flip one bit of one byte
        }
        if (send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size())) break;
      }
      close(fd);
    }
  }

  const Fault fault_;
  const int nth_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> faults_{0};
  std::thread thread_;
};

TEST(GatewayBenchErrorsTest, OneCorruptedByteIsAMismatch) {
  WrongServer server(WrongServer::Fault::kCorruptByte, 3);  // after the proof and one good response
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--size=100",
                                 "--duration=300ms", "--warmup=0s"});
  EXPECT_EQ(server.faults(), 1);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "mismatch"), 1);
  EXPECT_EQ(JsonNumber(run.json, "total"), 1);
  EXPECT_EQ(JsonField(run.json, "ok"), "false");
  EXPECT_NE(run.output.find("mismatch 1"), std::string::npos) << run.output;
}

TEST(GatewayBenchErrorsTest, CorruptedProofFailsTheConnection) {
  WrongServer server(WrongServer::Fault::kCorruptByte, 1);
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--duration=100ms"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "mismatch"), 1);
  EXPECT_EQ(JsonNumber(run.json, "established"), 0);
}

TEST(GatewayBenchErrorsTest, EarlyEofIsCounted) {
  WrongServer server(WrongServer::Fault::kEarlyEof, 5);
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--pipeline=2",
                                 "--duration=300ms", "--warmup=0s"});
  EXPECT_EQ(server.faults(), 1);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "eof") + JsonNumber(run.json, "reset"), 1);
  EXPECT_EQ(JsonField(run.json, "ok"), "false");
}

}  // namespace
