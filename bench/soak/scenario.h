// Scenario: one soak load on its own thread, started and stopped by the
// driver; and SoakTarget, what every scenario needs to know about the run
// (the gateway's data address, the payload pattern, the shared counters).
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include "bench/soak/counters.h"
#include "bench/soak/frame_stream.h"

namespace soak {

using Clock = std::chrono::steady_clock;

struct SoakTarget {
  sockaddr_in data{};  // the gateway's data plane
  const SoakPattern* pattern = nullptr;
  SoakCounters* counters = nullptr;
  uint64_t seed = 1;
};

// Start/RequestStop/Join from the driver thread; Run() on the scenario's own
// thread. The owner must Join() before destroying a derived object.
class Scenario {
 public:
  Scenario(const SoakTarget& target, uint64_t stream) : target_(target), rng_(target.seed * 1000003 + stream) {}
  virtual ~Scenario() { Join(); }
  Scenario(const Scenario&) = delete;
  Scenario& operator=(const Scenario&) = delete;

  void Start() {
    thread_ = std::thread([this] { Run(); });
  }
  // Asks Run() to wind down; it returns once its connections are settled.
  void RequestStop() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    wake_.notify_all();
  }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 protected:
  virtual void Run() = 0;

  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stop_;
  }
  // Paces the scenario: waits until `deadline` unless a stop is requested
  // first. Returns false when stopping.
  bool PaceUntil(Clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mu_);
    return !wake_.wait_until(lock, deadline, [this] { return stop_; });
  }
  // Calls `once` `per_second` times a second until a stop is requested; after
  // falling more than a second behind it starts afresh rather than burst.
  template <typename Once>
  void RunAtRate(double per_second, Once once) {
    if (per_second <= 0) return;
    const auto period = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / per_second));
    Clock::time_point next = Clock::now();
    while (PaceUntil(next)) {
      once();
      next += period;
      const Clock::time_point now = Clock::now();
      if (next < now - std::chrono::seconds(1)) next = now;
    }
  }

  SoakCounters& counters() { return *target_.counters; }

  const SoakTarget target_;
  std::mt19937_64 rng_;

 private:
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

// A diagnostic line on stderr; callers bound how many they print.
#define SOAK_LOG(...) std::fprintf(stderr, "soak: " __VA_ARGS__)

}  // namespace soak
