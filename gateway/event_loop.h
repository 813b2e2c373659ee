// One event loop per reactor thread: a Poller, the loop's clock, and a task
// queue woken through an eventfd. Post() is the only way other threads reach
// a reactor.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "gateway/poller.h"

namespace gateway {

// The monotonic clock in nanoseconds.
int64_t MonotonicNowNs();

// Post() is safe from any thread; everything else must be called in the loop
// thread (the thread that called BindToCurrentThread()).
class EventLoop : private PollHandler {
 public:
  using Task = absl::AnyInvocable<void() &&>;

  // The loop has no back-end until InstallPoller(), on the loop thread.
  EventLoop();
  ~EventLoop() override;
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Queues `task` to run on the loop thread. Returns false (and drops the
  // task) once the loop has been closed. The eventfd is written only when the
  // queue goes from empty to non-empty, so bursts of posts cost one wakeup.
  bool Post(Task task);

  // Marks the calling thread as the loop thread.
  void BindToCurrentThread() { owner_ = std::this_thread::get_id(); }
  bool IsInLoopThread() const { return owner_ == std::this_thread::get_id(); }
  // Aborts with a message unless called on the loop thread. Loop-only
  // methods call it through GATEWAY_ASSERT_IN_LOOP (thread_check.h).
  void AssertInLoopThread() const;

  // Monotonic nanoseconds, read once per wakeup (when Wait() returns): every
  // deadline of a turn is measured against the same instant.
  int64_t now_ns() const { return now_ns_; }
  void UpdateTime();

  Poller& poller() { return *poller_; }
  const Poller& poller() const { return *poller_; }
  bool has_poller() const { return poller_ != nullptr; }

  // Makes `poller` the loop's back-end, registering the wake-up fd with it,
  // and returns the previous one (null at first) for the caller to retire.
  // On failure nothing changes and `poller` is dropped.
  absl::StatusOr<std::unique_ptr<Poller>> InstallPoller(std::unique_ptr<Poller> poller);
  // Destroys the back-end on the loop thread (io_uring's ring belongs to
  // it), once nothing is registered any more. Called when the loop ends.
  void DestroyPoller();

  // Waits for events, at most `timeout_ms` (-1: no limit), then updates the
  // clock. Returns how many.
  int Wait(int timeout_ms);
  // Dispatches the events of the last Wait(), then the posted tasks.
  void Dispatch();

  // Runs queued tasks and refuses new ones. Called by the loop thread on exit.
  void Close();

 private:
  void OnReady(uint32_t ready) override;  // the eventfd
  void RunTasks();

  std::unique_ptr<Poller> poller_;
  int wake_fd_;
  bool wake_pending_ = false;
  std::thread::id owner_;
  int64_t now_ns_ = 0;
  std::vector<Poller::Event> events_;
  std::vector<Task> running_;

  // std::mutex rather than absl::Mutex: Debian's Abseil is not built with
  // TSan's annotations, so TSan cannot see absl::Mutex ordering memory.
  std::mutex mu_;
  std::vector<Task> queue_;  // guarded by mu_
  bool closed_ = false;      // guarded by mu_
};

}  // namespace gateway
