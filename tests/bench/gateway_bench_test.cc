// gateway-bench end to end: the real binary against an in-process gateway
// (closed loop, open loop, idle), and against deliberately wrong servers
// (a corrupted byte, an early EOF, nothing listening), which must make it exit
// non-zero with the right error counted. Timings are never asserted.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
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
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

struct BenchRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
  std::string json;    // the line starting with {"bench":
};

// The line of `output` that starts with {"bench":, or empty.
std::string JsonLine(const std::string& output) {
  std::string json;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StartsWith(line, "{\"bench\":")) json = std::string(line);
  }
  return json;
}

std::vector<std::string> BenchArgv(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GATEWAY_BENCH_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Runs gateway-bench with `args` to completion; kills it (and fails the test)
// if it has not finished in 60 s.
BenchRun RunBench(const std::vector<std::string>& args) {
  BenchRun run;
  absl::StatusOr<CommandResult> result = RunCommand(BenchArgv(args), "", absl::Seconds(60));
  if (!result.ok()) {
    ADD_FAILURE() << result.status();
    return run;
  }
  run.exit_code = result->exit_code;
  run.output = std::move(result->output);
  run.json = JsonLine(run.output);
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
    GatewayOptions options;
    options.reactors = 1;
    ASSERT_OK_AND_ASSIGN(gw_, StartTestGateway(options));
  }
  void TearDown() override {
    if (gw_) gw_->Shutdown(absl::Seconds(2));
  }
  std::string Port() const { return absl::StrCat("--port=", gw_->port()); }

  std::unique_ptr<Gateway> gw_;
};

TEST_F(GatewayBenchTest, ClosedLoopValidatesEveryResponseAndReportsJson) {
  const BenchRun run =
      RunBench({Port(), "--conns=4", "--pipeline=4", "--size=300", "--duration=1s", "--warmup=200ms", "--label=inproc",
                absl::StrCat("--server_pid=", getpid()), absl::StrCat("--backend_pid=", getpid())});
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
  EXPECT_GE(JsonNumber(run.json, "server_cpu_us_per_req"), 0);   // a number, not null
  EXPECT_GE(JsonNumber(run.json, "backend_cpu_us_per_req"), 0);  // charged separately
  EXPECT_EQ(JsonNumber(run.json, "backend_pid"), getpid());
  // Requests the gateway answered: the 4 proofs, every measured request, plus
  // warmup and in-flight ones.
  uint64_t frames_out = 0;
  frames_out += gw_->reactor_stats(0).frames_out.Get();
  EXPECT_GE(frames_out, 4 + static_cast<uint64_t>(JsonNumber(run.json, "requests")));
}

TEST_F(GatewayBenchTest, OpenLoopMeasuresFromIntendedSendTimes) {
  const BenchRun run =
      RunBench({Port(), "--conns=3", "--rate=3000", "--pipeline=8", "--size=16", "--duration=1s", "--warmup=100ms"});
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
  const BenchRun run =
      RunBench({Port(), "--idle=50", "--duration=200ms", "--threads=2", absl::StrCat("--server_pid=", getpid())});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("idle: 50 of 50 connections established"), std::string::npos) << run.output;
  EXPECT_EQ(JsonField(run.json, "mode"), "\"idle\"");
  EXPECT_EQ(JsonNumber(run.json, "established"), 50);
  EXPECT_GT(JsonNumber(run.json, "rss_before"), 0);
  EXPECT_GT(JsonNumber(run.json, "rss_after"), 0);
  EXPECT_EQ(gw_->reactor_stats(0).frames_out.Get(), 50u);  // exactly one proof each
}

TEST_F(GatewayBenchTest, SigintEndsTheIdleHoldEarlyWithASummary) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> bench,
                       Subprocess::Start(BenchArgv({Port(), "--idle=20", "--duration=600s"})));
  ASSERT_TRUE(WaitUntil([&] { return absl::StrContains(bench->Log(), "idle: 20 of 20") || !bench->Running(); },
                        Deadline(absl::Seconds(60))))
      << bench->Log();
  ASSERT_TRUE(bench->Running()) << bench->Log();
  ASSERT_EQ(kill(bench->pid(), SIGINT), 0);
  const std::optional<int> exit_code = bench->Wait(Deadline(absl::Seconds(60)));
  const std::string output = bench->Log();
  ASSERT_TRUE(exit_code.has_value()) << "gateway-bench did not exit after SIGINT:\n" << output;
  EXPECT_EQ(*exit_code, 0) << output;
  const std::string json = JsonLine(output);
  EXPECT_EQ(JsonField(json, "interrupted"), "true");
  EXPECT_EQ(JsonNumber(json, "established"), 20);
  EXPECT_EQ(JsonNumber(json, "total"), 0);
}

TEST(GatewayBenchFlagsTest, BadFlagsExitWithStatus2) {
  EXPECT_EQ(RunBench({"--size=0"}).exit_code, 2);
  EXPECT_EQ(RunBench({"--pipeline=0"}).exit_code, 2);
  EXPECT_EQ(RunBench({"--size=100000"}).exit_code, 2);
}

TEST(GatewayBenchErrorsTest, NothingListeningIsAConnectError) {
  // A bound but not listening socket holds the port, so connecting is refused.
  ASSERT_OK_AND_ASSIGN(const LoopbackSocket held, BindLoopback());
  const BenchRun run = RunBench({absl::StrCat("--port=", held.port()), "--conns=2", "--duration=100ms"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "connect"), 2);
  EXPECT_EQ(JsonField(run.json, "ok"), "false");
}

// A one-connection-at-a-time reverse server that misbehaves on purpose.
class WrongServer {
 public:
  // kErrorFrame answers with the empty frame 00000, as an upstream-mode
  // gateway does for a request its backend failed.
  // kDuplicate sends the response twice; kHalfResponse sends half of it,
  // then closes.
  enum class Fault { kCorruptByte, kEarlyEof, kErrorFrame, kDuplicate, kHalfResponse };

  // Misbehaves on its `nth` response (1 = the first).
  WrongServer(Fault fault, int nth) : fault_(fault), nth_(nth) {
    absl::StatusOr<LoopbackSocket> listener = ListenOnLoopback();
    EXPECT_OK(listener);
    if (listener.ok()) listener_ = *std::move(listener);
    thread_ = std::thread([this] { Serve(); });
  }
  ~WrongServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return listener_.port(); }
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
    while (listener_.fd() >= 0 && WaitReadable(listener_.fd())) {
      const int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
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
        // Every connection faults on its nth response (a reconnecting client
        // comes back for more).
        if (++served == nth_) {
          ++faults_;
          if (fault_ == Fault::kEarlyEof) break;
          if (fault_ == Fault::kHalfResponse) {
            send(fd, frame.data(), frame.size() / 2, MSG_NOSIGNAL);
            break;
          }
          if (fault_ == Fault::kDuplicate) frame += frame;
          if (fault_ == Fault::kErrorFrame) {
            frame = "00000";
          } else if (fault_ == Fault::kCorruptByte) {
            frame[5 + static_cast<size_t>(n) / 2] ^= 0x20;  // flip one bit of one byte
          }
        }
        if (send(fd, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size())) break;
      }
      close(fd);
    }
  }

  const Fault fault_;
  const int nth_;
  LoopbackSocket listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> faults_{0};
  std::thread thread_;
};

TEST(GatewayBenchErrorsTest, OneCorruptedByteIsAMismatch) {
  WrongServer server(WrongServer::Fault::kCorruptByte, 3);  // after the proof and one good response
  const BenchRun run =
      RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--size=100", "--duration=300ms", "--warmup=0s"});
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
  const BenchRun run = RunBench(
      {absl::StrCat("--port=", server.port()), "--conns=1", "--pipeline=2", "--duration=300ms", "--warmup=0s"});
  EXPECT_EQ(server.faults(), 1);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "eof") + JsonNumber(run.json, "reset"), 1);
  EXPECT_EQ(JsonField(run.json, "ok"), "false");
}

TEST(GatewayBenchErrorsTest, ErrorFrameIsAMismatchByDefault) {
  WrongServer server(WrongServer::Fault::kErrorFrame, 3);
  const BenchRun run =
      RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--size=64", "--duration=300ms", "--warmup=0s"});
  EXPECT_EQ(server.faults(), 1);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "mismatch"), 1);
  EXPECT_EQ(JsonNumber(run.json, "error_frames"), 0);
  EXPECT_EQ(JsonField(run.json, "accept_error_frames"), "false");
}

TEST(GatewayBenchErrorsTest, AcceptedErrorFrameIsCountedApartAndTheConnectionGoesOn) {
  WrongServer server(WrongServer::Fault::kErrorFrame, 3);
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--size=64", "--pipeline=4",
                                 "--duration=300ms", "--warmup=0s", "--accept_error_frames"});
  EXPECT_EQ(server.faults(), 1);
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "error_frames"), 1);
  EXPECT_EQ(JsonNumber(run.json, "total"), 0);  // errors: no mismatch, the connection stayed up
  EXPECT_EQ(JsonNumber(run.json, "established"), 1);
  EXPECT_GT(JsonNumber(run.json, "requests"), 0);  // responses after the error frame were validated
  EXPECT_EQ(JsonField(run.json, "ok"), "true");
  EXPECT_NE(run.output.find("error frames 1"), std::string::npos) << run.output;
}

TEST(GatewayBenchErrorsTest, ErrorFrameAnsweringTheProofFailsTheConnection) {
  WrongServer server(WrongServer::Fault::kErrorFrame, 1);
  const BenchRun run =
      RunBench({absl::StrCat("--port=", server.port()), "--conns=1", "--duration=100ms", "--accept_error_frames"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "mismatch"), 1);
  EXPECT_EQ(JsonNumber(run.json, "error_frames"), 0);
  EXPECT_EQ(JsonNumber(run.json, "established"), 0);
}

// The reconnecting mode (--reconnect), the client contract: an EOF or reset
// reopens the connection and resends every unanswered request.

// The "reconnect" object's `key` in the JSON line.
double ReconnectNumber(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"reconnect\":{");
  EXPECT_NE(at, std::string::npos) << json;
  return at == std::string::npos ? -1 : JsonNumber(json.substr(at), key);
}

TEST(GatewayBenchReconnectTest, EofWithARequestUnansweredReconnectsAndResendsIt) {
  // Every connection ends (FIN) in place of its 5th response.
  WrongServer server(WrongServer::Fault::kEarlyEof, 5);
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--reconnect", "--conns=1", "--size=32",
                                 "--duration=300ms", "--warmup=0s"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const int faults = server.faults();
  ASSERT_GT(faults, 0);
  // Each EOF left exactly one request (pipeline 1) unanswered: resent once.
  EXPECT_EQ(ReconnectNumber(run.json, "reconnects"), faults);
  EXPECT_EQ(ReconnectNumber(run.json, "eofs"), faults);
  EXPECT_EQ(ReconnectNumber(run.json, "resent"), faults);
  EXPECT_EQ(ReconnectNumber(run.json, "resets"), 0);
  EXPECT_EQ(ReconnectNumber(run.json, "failed"), 0);
  EXPECT_EQ(ReconnectNumber(run.json, "lost"), 0);
  EXPECT_EQ(JsonNumber(run.json, "total"), 0);  // errors
  EXPECT_EQ(JsonNumber(run.json, "established"), 1);
  EXPECT_EQ(JsonField(run.json, "ok"), "true");
  EXPECT_NE(run.output.find(absl::StrCat("reconnect  ", faults, " reconnects")), std::string::npos) << run.output;
}

TEST(GatewayBenchReconnectTest, EofInTheMiddleOfAResponseDiscardsItAndResendsTheRequest) {
  WrongServer server(WrongServer::Fault::kHalfResponse, 4);
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--reconnect", "--conns=1", "--size=100",
                                 "--duration=300ms", "--warmup=0s"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const int faults = server.faults();
  ASSERT_GT(faults, 0);
  EXPECT_EQ(ReconnectNumber(run.json, "reconnects"), faults);
  EXPECT_EQ(ReconnectNumber(run.json, "resent"), faults);
  EXPECT_EQ(ReconnectNumber(run.json, "lost"), 0);
  EXPECT_EQ(JsonNumber(run.json, "total"), 0);  // errors: the half response was no mismatch
}

TEST(GatewayBenchReconnectTest, ReconnectsGoRoundRobinOverTheTargets) {
  WrongServer a(WrongServer::Fault::kEarlyEof, 3);
  WrongServer b(WrongServer::Fault::kEarlyEof, 3);
  const BenchRun run = RunBench({"--reconnect", absl::StrCat("--targets=127.0.0.1:", a.port(), ",127.0.0.1:", b.port()),
                                 "--conns=1", "--duration=300ms", "--warmup=0s"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_GT(a.faults(), 0);
  EXPECT_GT(b.faults(), 0);
  EXPECT_EQ(ReconnectNumber(run.json, "reconnects"), a.faults() + b.faults());
  EXPECT_EQ(ReconnectNumber(run.json, "lost"), 0);
}

TEST_F(GatewayBenchTest, ReconnectRetriesRefusedConnectsOnAnotherTarget) {
  ASSERT_OK_AND_ASSIGN(const LoopbackSocket held, BindLoopback());  // refuses
  const BenchRun run =
      RunBench({"--reconnect", absl::StrCat("--targets=127.0.0.1:", held.port(), ",127.0.0.1:", gw_->port()),
                "--conns=6", "--duration=200ms", "--warmup=0s"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "established"), 6);
  EXPECT_GE(ReconnectNumber(run.json, "refused"), 3);  // round robin sent every other first connect there
  EXPECT_EQ(ReconnectNumber(run.json, "failed"), 0);
  EXPECT_EQ(JsonNumber(run.json, "connect"), 0);  // errors
}

TEST(GatewayBenchReconnectTest, GivesUpAfterTheAttemptsAndCountsTheRequestsFailed) {
  ASSERT_OK_AND_ASSIGN(const LoopbackSocket held, BindLoopback());
  const BenchRun run = RunBench(
      {absl::StrCat("--port=", held.port()), "--reconnect", "--reconnect_attempts=3", "--conns=2", "--duration=100ms"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(ReconnectNumber(run.json, "refused"), 6);
  EXPECT_EQ(JsonNumber(run.json, "connect"), 2);  // errors: both gave up
  EXPECT_EQ(JsonField(run.json, "ok"), "false");
}

TEST(GatewayBenchReconnectTest, ADuplicatedResponseIsCounted) {
  WrongServer server(WrongServer::Fault::kDuplicate, 3);
  // Paced, so the extra copy arrives while no request awaits a response.
  const BenchRun run = RunBench({absl::StrCat("--port=", server.port()), "--reconnect", "--conns=1", "--rate=10",
                                 "--duration=500ms", "--warmup=0s", "--settle=1s"});
  EXPECT_EQ(server.faults(), 1);
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_EQ(JsonNumber(run.json, "duplicate"), 1);
  EXPECT_EQ(JsonNumber(run.json, "mismatch"), 0);
}

TEST_F(GatewayBenchTest, ReconnectSurvivesTheGatewayClosingConnectionsAtFrameBoundaries) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> bench,
                       Subprocess::Start(BenchArgv({Port(), "--reconnect", "--conns=8", "--rate=800", "--pipeline=4",
                                                    "--duration=2s", "--warmup=0s", "--size=200"})));
  // Close every connection (responses first, then FIN) a few times over.
  int closed = 0;
  for (int round = 0; round < 4 && bench->Running(); ++round) {
    absl::SleepFor(absl::Milliseconds(300));
    ASSERT_OK_AND_ASSIGN(const ConnectionPage page, gw_->ListConnections(ListQuery{}));
    for (const ConnectionInfo& info : page.connections) {
      if (gw_->CloseConnection(info.fd, info.id, CloseMode::kFlush).ok()) ++closed;
    }
  }
  const std::optional<int> exit_code = bench->Wait(Deadline(absl::Seconds(60)));
  const std::string output = bench->Log();
  ASSERT_TRUE(exit_code.has_value()) << output;
  EXPECT_EQ(*exit_code, 0) << output;
  const std::string json = JsonLine(output);
  ASSERT_GT(closed, 0);
  // Every close the client saw ends in a reconnect; nothing failed or got lost.
  EXPECT_EQ(ReconnectNumber(json, "reconnects"), closed) << json;
  EXPECT_EQ(ReconnectNumber(json, "eofs") + ReconnectNumber(json, "resets"), closed) << json;
  EXPECT_EQ(ReconnectNumber(json, "failed"), 0);
  EXPECT_EQ(ReconnectNumber(json, "lost"), 0);
  EXPECT_EQ(JsonNumber(json, "total"), 0);  // errors: no mismatch, no duplicate
}

}  // namespace
}  // namespace gateway::testing
