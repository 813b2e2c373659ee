// fork + exec rather than posix_spawn, so the child can ask for SIGKILL when
// its parent dies (prctl) and get its own stdio before exec. Between fork and
// exec the child only makes async-signal-safe calls: the test is
// multi-threaded.
#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace gateway::testing {
namespace {

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Forks and execs `argv`; the child's stdin comes from `stdin_path` and its
// stdout/stderr go to `out_path` (appended).
absl::StatusOr<pid_t> ForkExec(const std::vector<std::string>& argv, const std::string& stdin_path,
                               const std::string& out_path) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return absl::NotFoundError(absl::StrCat("cannot open ", stdin_path, ": ", strerror(errno)));
  const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return absl::InternalError(absl::StrCat("cannot open ", out_path, ": ", strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the parent died before prctl
    // Signals blocked by the test (or its threads) must not stay blocked in
    // the child: the gateway relies on SIGTERM.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execvp(args[0], args.data());
    const char message[] = "exec failed\n";
    (void)!write(2, message, sizeof message - 1);
    _exit(127);
  }
  close(in);
  close(out);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  return pid;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                              const std::string& log_path) {
  absl::StatusOr<pid_t> pid = ForkExec(argv, "", log_path);
  if (!pid.ok()) return pid.status();
  return std::unique_ptr<Subprocess>(new Subprocess(*pid, log_path));
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv) {
  auto dir = std::make_unique<TempDir>();
  if (dir->path().empty()) return absl::InternalError("cannot create a temporary directory");
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Start(argv, dir->File("output.log"));
  if (process.ok()) (*process)->own_dir_ = std::move(dir);
  return process;
}

Subprocess::~Subprocess() { Stop(absl::Seconds(10)); }

int Subprocess::WaitUntil(absl::Time deadline) {
  while (exit_code_ < 0) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = DecodeStatus(status);
      break;
    }
    if (r < 0 && errno != EINTR) {
      exit_code_ = 255;  // not our child any more: nothing left to wait for
      break;
    }
    if (absl::Now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return exit_code_;
}

bool Subprocess::Running() { return WaitUntil(absl::InfinitePast()) < 0; }

std::optional<int> Subprocess::Wait(absl::Time deadline) {
  const int code = WaitUntil(deadline);
  if (code < 0) return std::nullopt;
  return code;
}

int Subprocess::Stop(absl::Duration grace) {
  if (exit_code_ >= 0) return exit_code_;
  kill(pid_, SIGTERM);
  if (WaitUntil(absl::Now() + grace) >= 0) return exit_code_;
  kill(pid_, SIGKILL);
  return WaitUntil(absl::InfiniteFuture());
}

std::string Subprocess::Log() const { return ReadFileOrEmpty(log_path_); }

std::optional<std::string> WaitForReadyLine(Subprocess& process, absl::Time deadline) {
  constexpr absl::string_view kPrefix = "gateway: ready ";
  for (;;) {
    const bool running = process.Running();  // before reading: a last line written on exit still counts
    const std::string log = process.Log();
    for (absl::string_view line : absl::StrSplit(log, '\n')) {
      if (absl::StartsWith(line, kPrefix)) return std::string(line.substr(kPrefix.size()));
    }
    if (!running || absl::Now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

int PortIn(absl::string_view json, absl::string_view key) {
  const std::string quoted = absl::StrCat("\"", key, "\":");
  const size_t at = json.find(quoted);
  if (at == absl::string_view::npos) return -1;
  absl::string_view rest = json.substr(at + quoted.size());
  rest = rest.substr(0, rest.find_first_of(",}"));
  int port = -1;
  return absl::SimpleAtoi(rest, &port) ? port : -1;
}

int WaitForReadyPort(Subprocess& process, absl::string_view key, absl::Time deadline) {
  const std::optional<std::string> json = WaitForReadyLine(process, deadline);
  if (!json.has_value()) return 0;
  return std::max(PortIn(*json, key), 0);
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& stdin_path,
                                         absl::Duration timeout) {
  TempDir dir;
  const std::string out_path = dir.File("output");
  absl::StatusOr<pid_t> pid = ForkExec(argv, stdin_path, out_path);
  if (!pid.ok()) return pid.status();
  const absl::Time deadline = absl::Now() + timeout;
  int status = 0;
  bool killed = false;
  while (true) {
    const pid_t r = waitpid(*pid, &status, WNOHANG);
    if (r == *pid) break;
    if (r < 0 && errno != EINTR) return absl::InternalError(absl::StrCat("waitpid: ", strerror(errno)));
    if (!killed && absl::Now() >= deadline) {
      kill(*pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CommandResult result{DecodeStatus(status), ReadFileOrEmpty(out_path)};
  if (killed) {
    return absl::DeadlineExceededError(absl::StrCat(absl::StrJoin(argv, " "), " ran longer than ",
                                                    absl::FormatDuration(timeout), ": ", result.output));
  }
  return result;
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string pattern = absl::StrCat(base != nullptr && *base != '\0' ? base : "/tmp", "/gateway-test-XXXXXX");
  if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace gateway::testing
