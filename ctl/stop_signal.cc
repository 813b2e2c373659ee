// A self-pipe: the signal handler and Notify() write a byte, Wait polls.
#include "ctl/stop_signal.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include "absl/time/clock.h"

namespace gateway::ctl {
namespace {

std::atomic<int> signal_pipe{-1};
std::atomic<bool> signalled{false};
struct sigaction old_int, old_term;

void OnSignal(int) {
  signalled.store(true);
  const char byte = 's';
  // Async-signal-safe; a full pipe already wakes the waiter.
  [[maybe_unused]] ssize_t n = write(signal_pipe.load(), &byte, 1);
}

}  // namespace

StopSignal::StopSignal() {
  if (pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
  signal_pipe.store(pipe_[1]);
  signalled.store(false);
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  action.sa_flags = SA_RESETHAND;  // the second Ctrl-C is the default: exit at once
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);
}

StopSignal::~StopSignal() {
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  signal_pipe.store(-1);
  for (int fd : pipe_) {
    if (fd >= 0) close(fd);
  }
}

void StopSignal::Notify() {
  const char byte = 'n';
  [[maybe_unused]] ssize_t n = write(pipe_[1], &byte, 1);
}

bool StopSignal::Wait(absl::Duration timeout) {
  const bool forever = timeout <= absl::ZeroDuration();
  const absl::Time deadline = absl::Now() + timeout;
  pollfd p = {pipe_[0], POLLIN, 0};
  while (!signalled.load()) {
    int wait_ms = -1;
    if (!forever) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) break;
      wait_ms = static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))));
    }
    const int n = poll(&p, 1, wait_ms);
    if (n > 0) {
      char byte;
      if (read(pipe_[0], &byte, 1) == 1 && byte == 'n') break;
    }
  }
  return signalled.load();
}

}  // namespace gateway::ctl
