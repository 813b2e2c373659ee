// Internal to the Gateway facade's .cc files: the synchronous methods are
// their asynchronous twins plus a wait.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace gateway {

// How long the synchronous methods wait for the reactors.
inline constexpr absl::Duration kReactorReplyTimeout = absl::Seconds(30);

// Runs an asynchronous call and waits for its result: the synchronous
// methods. The result lives in shared memory, so a reply after the wait has
// given up writes into live memory and is dropped with it.
template <typename T, typename Start>
T WaitFor(Start start, absl::Duration timeout = kReactorReplyTimeout) {
  struct Latch {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<T> result;  // guarded by mu
  };
  auto latch = std::make_shared<Latch>();
  start([latch](T result) {
    {
      std::lock_guard<std::mutex> lock(latch->mu);
      latch->result.emplace(std::move(result));
    }
    latch->cv.notify_all();
  });
  std::unique_lock<std::mutex> lock(latch->mu);
  if (!latch->cv.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return latch->result.has_value(); })) {
    return T(absl::DeadlineExceededError("a reactor did not answer in time"));
  }
  return *std::move(latch->result);
}

}  // namespace gateway
