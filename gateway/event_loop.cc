#include "gateway/event_loop.h"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "gateway/log.h"
#include "gateway/thread_check.h"

namespace gateway {

EventLoop::EventLoop() : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (wake_fd_ < 0) DieErrno("eventfd");
}

absl::StatusOr<std::unique_ptr<Poller>> EventLoop::InstallPoller(std::unique_ptr<Poller> poller) {
  GATEWAY_ASSERT_IN_LOOP(*this);
  // epoll keeps the eventfd level-triggered in both modes (it is drained on
  // each wakeup anyway, and a trigger-mode switch need not re-register it);
  // a count already in it is reported by the new back-end at once.
  if (absl::Status added = poller->Add(wake_fd_, this, Poller::kReadable, FdRole::kNotify); !added.ok()) {
    return added;
  }
  events_.clear();
  std::swap(poller, poller_);
  return poller;
}

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void EventLoop::AssertInLoopThread() const {
  if (!IsInLoopThread()) Die("a loop-thread-only method was called from another thread");
}

void EventLoop::UpdateTime() { now_ns_ = MonotonicNowNs(); }

void EventLoop::DestroyPoller() {
  GATEWAY_ASSERT_IN_LOOP(*this);
  events_.clear();
  poller_.reset();
}

EventLoop::~EventLoop() { close(wake_fd_); }

bool EventLoop::Post(Task task) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return false;
    was_empty = queue_.empty();
    queue_.push_back(std::move(task));
  }
  if (was_empty) {
    const uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is already due to wake.
    while (write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  return true;
}

int EventLoop::Wait(int timeout_ms) {
  GATEWAY_ASSERT_IN_LOOP(*this);
  const int n = poller_->Wait(timeout_ms, &events_);
  UpdateTime();
  return n;
}

void EventLoop::Dispatch() {
  GATEWAY_ASSERT_IN_LOOP(*this);
  for (const Poller::Event& event : events_) event.handler->OnReady(event.ready);
  if (wake_pending_) {
    wake_pending_ = false;
    RunTasks();
  }
}

void EventLoop::OnReady(uint32_t /*ready*/) {
  uint64_t count;
  while (read(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
  wake_pending_ = true;
}

void EventLoop::RunTasks() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    running_.swap(queue_);
  }
  for (Task& task : running_) std::move(task)();
  running_.clear();
}

void EventLoop::Close() {
  GATEWAY_ASSERT_IN_LOOP(*this);
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (queue_.empty()) {
        closed_ = true;
        return;
      }
    }
    RunTasks();
  }
}

}  // namespace gateway
