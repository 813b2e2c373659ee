// A backend gateway as a child process (upstream_test_backend, see
// backend_main.cc), so a test can kill -9 it or SIGSTOP it. Test-thread only;
// the Subprocess stops and reaps it on destruction.
#pragma once

#include <signal.h>

#include <memory>
#include <string>

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
  void Pause() { kill(process_->pid(), SIGSTOP); }
  void Resume() { kill(process_->pid(), SIGCONT); }

 private:
  BackendProcess(std::unique_ptr<Subprocess> process, int port) : process_(std::move(process)), port_(port) {}

  std::unique_ptr<Subprocess> process_;
  int port_;
};

}  // namespace gateway::testing
