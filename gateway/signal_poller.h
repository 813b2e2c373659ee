// The signal-driven back-end (O_ASYNC + F_SETSIG): the kernel queues a
// real-time signal carrying the fd and its poll band on each readiness
// change; the poller reads them from a signalfd. Edge-triggered.
//
// Process-wide precondition: the readiness signal (kReadinessSignal()) and
// SIGIO must be blocked in every thread before any fd is switched to O_ASYNC,
// since both terminate the process by default. PrepareSignalModel() blocks
// them in the calling thread, so threads created afterwards inherit the mask;
// ProbeIoModel(kSignal) calls it, and Gateway::Create calls ProbeIoModel on
// the main thread before starting any reactor thread.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/poller.h"

namespace gateway {

// The real-time signal readiness is reported with: SIGRTMIN + 1. glibc's
// SIGRTMIN already skips the RT signals it keeps for itself (NPTL); the
// offset keeps clear of SIGRTMIN, which libraries commonly take first.
int ReadinessSignal();

// Blocks ReadinessSignal() and SIGIO in the calling thread (see above).
absl::Status PrepareSignalModel();

// Loop-thread only (built on it: signals are directed to the thread that
// constructs the poller). Does not own the fds.
//
// Streams and listeners are watched by signals; kNotify fds (the loop's
// eventfd: eventfd has no O_ASYNC) by poll(2) next to the signalfd. When the
// RT signal queue overflows the kernel sends plain SIGIO instead; the poller
// then rescans every fd with poll(2) (counted in rescans()).
class SignalPoller final : public Poller {
 public:
  static absl::StatusOr<std::unique_ptr<SignalPoller>> Create();
  ~SignalPoller() override;
  SignalPoller(const SignalPoller&) = delete;
  SignalPoller& operator=(const SignalPoller&) = delete;

  IoModel model() const override { return IoModel::kSignal; }
  TriggerMode mode() const override { return TriggerMode::kEdge; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;
  void Close(int fd) override;
  Leftovers Release(int fd) override;

  // Times a queue overflow (SIGIO) made the poller rescan every fd.
  uint64_t rescans() const { return rescans_; }

 private:
  struct Entry {
    PollHandler* handler = nullptr;  // null: not registered
    uint32_t interest = 0;
    FdRole role = FdRole::kStream;
    uint32_t pending = 0;  // readiness gathered for the next event
  };

  SignalPoller(int signal_fd, pid_t tid);
  Entry* Find(int fd);
  // Records `ready` for `fd`, reported by the current or next Wait().
  void Note(int fd, uint32_t ready);
  // Polls `fd` now and notes what it is ready for: readiness that predates
  // O_ASYNC (or a new interest) raises no signal.
  void PollNow(int fd);
  // Reads the queued signals; true if SIGIO (a queue overflow) was among them.
  bool DrainSignals();
  void Rescan();
  void CheckHangups();  // adds kHangup to readable streams that hung up
  void Forget(int fd);
  int Collect(std::vector<Event>* events);

  const int signal_fd_;
  const pid_t tid_;
  std::vector<Entry> entries_;   // indexed by fd
  std::vector<int> noted_;       // fds with pending != 0
  std::vector<int> notify_fds_;  // kNotify fds, watched by poll()
  std::vector<pollfd> poll_set_;
  uint64_t rescans_ = 0;
};

}  // namespace gateway
