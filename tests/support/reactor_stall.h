// Blocks one reactor's thread until released, as a reactor stuck in a long
// task would (Gateway::PostForTesting): for tests of what goes on while a
// reactor is busy, and of what it finds when it wakes. Thread-safe; shared
// with the task it posts.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>

#include "gateway/gateway.h"
#include "gtest/gtest.h"

namespace gateway::testing {

class Stall {
 public:
  // Returns once reactor `index` of `gw` is blocked.
  static std::shared_ptr<Stall> Start(Gateway& gw, int index) {
    auto stall = std::make_shared<Stall>();
    EXPECT_TRUE(gw.PostForTesting(index, [stall] {
      std::unique_lock<std::mutex> lock(stall->mu_);
      stall->entered_ = true;
      stall->cv_.notify_all();
      stall->cv_.wait(lock, [&] { return stall->released_; });
    }));
    std::unique_lock<std::mutex> lock(stall->mu_);
    stall->cv_.wait(lock, [&] { return stall->entered_; });
    return stall;
  }

  // Lets the reactor go on; calling it again does nothing.
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      released_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;   // guarded by mu_
  bool released_ = false;  // guarded by mu_
};

}  // namespace gateway::testing
