// WatchPump: the thread that starts watch streams' writes, within a budget.
#include "control/watch_session.h"

#include <pthread.h>

#include <vector>

namespace gateway::control {

WatchPump::WatchPump(double events_per_sec)
    : rate_(std::max(0.0, events_per_sec)),
      burst_(std::max(1.0, rate_ / 10)),
      tokens_(burst_),
      refilled_(Clock::now()),
      thread_([this] { Run(); }) {}

WatchPump::~WatchPump() { Stop(); }

void WatchPump::Kick(std::shared_ptr<WatchWriter> writer) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    ready_.push_back(std::move(writer));
  }
  wake_.notify_one();
}

bool WatchPump::TryTakeWrite() {
  if (rate_ == 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (!waiting_.empty()) return false;  // first come, first served
  RefillLocked(Clock::now());
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void WatchPump::WaitForWrite(std::shared_ptr<WatchWriter> writer) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    first = waiting_.empty();
    waiting_.push_back(std::move(writer));
  }
  // Otherwise the pump is already timing the next grant.
  if (first) wake_.notify_one();
}

void WatchPump::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  ready_.clear();
  waiting_.clear();
}

void WatchPump::RefillLocked(Clock::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  refilled_ = now;
}

void WatchPump::Run() {
  // Named for top -H and perf; a failure (name too long) only loses the name.
  (void)pthread_setname_np(pthread_self(), "watch-pump");
  for (;;) {
    std::deque<std::shared_ptr<WatchWriter>> kicked;
    std::vector<std::shared_ptr<WatchWriter>> granted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (stopping_) return;
        if (!ready_.empty()) break;
        if (waiting_.empty()) {
          wake_.wait(lock);
          continue;
        }
        RefillLocked(Clock::now());
        if (tokens_ >= 1) break;
        // Grants go out in batches at most every millisecond: waking for
        // each one would cost more than the writes it paces.
        const auto next_token = std::chrono::duration<double>((1 - tokens_) / rate_);
        wake_.wait_for(lock, std::max<Clock::duration>(std::chrono::milliseconds(1),
                                                       std::chrono::duration_cast<Clock::duration>(next_token)));
      }
      kicked.swap(ready_);
      if (!waiting_.empty()) RefillLocked(Clock::now());
      while (tokens_ >= 1 && !waiting_.empty()) {
        tokens_ -= 1;
        granted.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
    }
    for (auto& writer : kicked) writer->StartNextWrite();
    for (auto& writer : granted) writer->StartGrantedWrite();
  }
}

}  // namespace gateway::control
