// A backend gateway as a child process (upstream_test_backend, see
// backend_main.cc), so a test can kill -9 it or SIGSTOP it. Test-thread only;
// the Subprocess stops and reaps it on destruction.
#pragma once

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

#ifndef UPSTREAM_TEST_BACKEND
#error "UPSTREAM_TEST_BACKEND must name the upstream_test_backend executable"
#endif

namespace gateway::testing {

class BackendProcess {
 public:
  // Starts one on 127.0.0.1:`port` (0: any) and waits for its ready line.
  static absl::StatusOr<std::unique_ptr<BackendProcess>> Start(int port = 0) {
    absl::StatusOr<std::unique_ptr<Subprocess>> process =
        Subprocess::Start({UPSTREAM_TEST_BACKEND, absl::StrCat("--listen=127.0.0.1:", port)});
    if (!process.ok()) return process.status();
    const int ready = WaitForReadyPort(**process, "data_port", Deadline());
    if (ready <= 0) return absl::UnavailableError(absl::StrCat("backend did not start: ", (*process)->Log()));
    return std::unique_ptr<BackendProcess>(new BackendProcess(*std::move(process), ready));
  }

  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  pid_t pid() const { return process_->pid(); }
  // kill -9, and reaps it.
  void Kill() {
    kill(process_->pid(), SIGKILL);
    process_->Wait(Deadline());
  }
  // SIGSTOP, then waits until every thread of it has stopped: kill() returns
  // before a running process stops, and until then it may still answer.
  // False if it has not stopped by the deadline.
  bool Pause() {
    kill(process_->pid(), SIGSTOP);
    return WaitUntil([&] { return AllThreadsStopped(); });
  }
  void Resume() { kill(process_->pid(), SIGCONT); }

 private:
  BackendProcess(std::unique_ptr<Subprocess> process, int port) : process_(std::move(process)), port_(port) {}

  // Every /proc/<pid>/task/<tid>/stat says 'T' (the state follows the
  // command name's closing parenthesis).
  bool AllThreadsStopped() const {
    std::error_code error;
    const std::filesystem::path tasks = absl::StrCat("/proc/", process_->pid(), "/task");
    bool any = false;
    for (const auto& task : std::filesystem::directory_iterator(tasks, error)) {
      std::ifstream in(task.path() / "stat");
      const std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') return false;
      any = true;
    }
    return any && !error;
  }

  std::unique_ptr<Subprocess> process_;
  int port_;
};

}  // namespace gateway::testing
