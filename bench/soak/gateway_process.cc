// fork + exec, not posix_spawn, so the child can ask for SIGKILL when the
// driver dies (prctl) before exec. Between fork and exec the child makes only
// async-signal-safe calls.
#include "bench/soak/gateway_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace soak {
namespace {

// Forks and execs `argv` with stdout and stderr on a pipe; returns the pid and
// the pipe's read end.
absl::StatusOr<std::pair<pid_t, int>> Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe2: ", strerror(errno)));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    dup2(pipe_fds[1], STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    execv(args[0], args.data());
    const char message[] = "exec failed\n";
    (void)!write(STDERR_FILENO, message, sizeof message - 1);
    _exit(127);
  }
  close(pipe_fds[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  return std::make_pair(pid, pipe_fds[0]);
}

// The ready line: `gateway: ready {"data_port":N,"control_port":N,"metrics_port":N}`.
constexpr absl::string_view kReadyPrefix = "gateway: ready ";

// The value of `"key":N` in the ready line's flat JSON object of integers, or 0.
int PortIn(absl::string_view json, absl::string_view key) {
  const std::string quoted = absl::StrCat("\"", key, "\":");
  const size_t at = json.find(quoted);
  if (at == absl::string_view::npos) return 0;
  absl::string_view rest = json.substr(at + quoted.size());
  rest = rest.substr(0, rest.find_first_of(",}"));
  int port = 0;
  return absl::SimpleAtoi(rest, &port) ? port : 0;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

}  // namespace

std::string GatewayHelp(const std::string& binary) {
  absl::StatusOr<std::pair<pid_t, int>> child = Spawn({binary, "--helpfull"});
  if (!child.ok()) return "";
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(child->second, buffer, sizeof buffer);
    if (n > 0) {
      text.append(buffer, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  close(child->second);
  int status = 0;
  while (waitpid(child->first, &status, 0) < 0 && errno == EINTR) {
  }
  return text;
}

absl::StatusOr<std::unique_ptr<GatewayProcess>> GatewayProcess::Start(const std::string& binary,
                                                                      const std::vector<std::string>& args,
                                                                      const std::string& log_path, int timeout_ms) {
  std::vector<std::string> argv = {binary, "--listen=127.0.0.1:0", "--control_listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::pair<pid_t, int>> child = Spawn(argv);
  if (!child.ok()) return child.status();
  std::unique_ptr<GatewayProcess> process(new GatewayProcess(child->first, child->second, log_path));
  if (!process->WaitForPorts(timeout_ms)) {
    process->Stop(1000);
    return absl::UnavailableError(
        absl::StrCat("the gateway (", absl::StrJoin(argv, " "), ") did not print its three ports; see ", log_path));
  }
  return process;
}

GatewayProcess::GatewayProcess(pid_t pid, int out_fd, const std::string& log_path) : pid_(pid) {
  reader_ = std::thread([this, out_fd, log_path] { CopyOutput(out_fd, log_path); });
}

GatewayProcess::~GatewayProcess() {
  Stop(10000);
  if (reader_.joinable()) reader_.join();
}

void GatewayProcess::CopyOutput(int out_fd, const std::string& log_path) {
  FILE* log = log_path.empty() ? nullptr : std::fopen(log_path.c_str(), "ae");
  std::string pending;
  char buffer[4096];
  for (;;) {
    const ssize_t n = read(out_fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (log != nullptr) {
      std::fwrite(buffer, 1, static_cast<size_t>(n), log);
      std::fflush(log);
    }
    pending.append(buffer, static_cast<size_t>(n));
    size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      const std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (!absl::StartsWith(line, kReadyPrefix)) continue;
      const absl::string_view json = absl::string_view(line).substr(kReadyPrefix.size());
      const int ports[3] = {PortIn(json, "data_port"), PortIn(json, "control_port"), PortIn(json, "metrics_port")};
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < 3; ++i) {
        if (ports[i] > 0) parsed_[i] = ports[i];
      }
      ports_seen_.notify_all();
    }
  }
  close(out_fd);
  if (log != nullptr) std::fclose(log);
  std::lock_guard<std::mutex> lock(mu_);
  output_closed_ = true;
  ports_seen_.notify_all();
}

bool GatewayProcess::WaitForPorts(int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool all = ports_seen_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] {
    return output_closed_ || (parsed_[0] > 0 && parsed_[1] > 0 && parsed_[2] > 0);
  });
  data_port_ = parsed_[0];
  control_port_ = parsed_[1];
  metrics_port_ = parsed_[2];
  return all && data_port_ > 0 && control_port_ > 0 && metrics_port_ > 0;
}

int GatewayProcess::Reap(bool block) {
  if (exit_status_ >= 0) return exit_status_;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) exit_status_ = DecodeStatus(status);
  if (r < 0) exit_status_ = 255;  // not our child any more
  return exit_status_;
}

bool GatewayProcess::Running() { return Reap(false) < 0; }

int GatewayProcess::Stop(int grace_ms) {
  if (Reap(false) >= 0) return exit_status_;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (Reap(false) < 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling a child's exit; no event to wait on
  }
  if (exit_status_ < 0) {
    kill(pid_, SIGKILL);
    Reap(true);
  }
  return exit_status_;
}

}  // namespace soak
