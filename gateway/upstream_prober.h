// Active health checks for upstream mode: one thread keeps a persistent TCP
// connection to every target backend and, each interval (±10% jitter, so
// many gateways do not probe in step), sends one probe frame over it and
// waits for one non-empty response frame. Each round's result goes to a
// callback; deciding healthy/unhealthy from them (rise/fall) is the caller's.
// All I/O is non-blocking except getaddrinfo, run on every reconnect: instant
// for numeric hosts, but a slow DNS answer for a name stalls every target.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "gateway/upstream_probe.h"

namespace gateway {

// Thread-safe (Start, AddTarget, RemoveTarget from any thread); probing and
// the callback run on the prober's own thread, which the destructor joins.
class UpstreamProber {
 public:
  using Result = ProbeResult;
  // Runs on the prober thread, one result at a time. It may call AddTarget
  // and RemoveTarget; it must not destroy the prober, and must not block on
  // a lock that a RemoveTarget caller holds (RemoveTarget waits for it).
  using Callback = absl::AnyInvocable<void(const Result&)>;

  // `interval` > 0; `timeout` bounds each connect and each probe round trip;
  // `payload` is 1..99999 bytes.
  UpstreamProber(absl::Duration interval, absl::Duration timeout, std::string payload, Callback callback);
  // Stops and joins the thread: no callback runs after it returns. Targets in
  // flight are abandoned, not waited for.
  ~UpstreamProber();
  UpstreamProber(const UpstreamProber&) = delete;
  UpstreamProber& operator=(const UpstreamProber&) = delete;

  // Starts the thread; targets added before are probed from then on.
  void Start();
  // Probes `address` ("host:port"), first within one interval (jittered).
  // A target already present is left as it is.
  void AddTarget(const std::string& address);
  // Stops probing `address` and closes its connection. Once it returns, no
  // callback for it runs (from another thread it waits for a callback in
  // progress; from the callback the guarantee holds as it returns).
  void RemoveTarget(const std::string& address);

 private:
  using Clock = UpstreamProbe::Clock;
  struct Command {
    bool add = true;
    std::string address;
  };
  struct Target {
    Target(std::string address, absl::Duration timeout, const std::string& payload, uint64_t id)
        : probe(std::move(address), timeout, payload), id(id) {}
    UpstreamProbe probe;
    uint64_t id;  // tells a re-added target from the one removed before it
    Clock::time_point next_round;
  };
  struct Done {
    uint64_t id;
    Result result;
  };

  void Run();
  // Applies queued Add/Remove commands; false once the prober is stopping.
  bool ApplyCommands();
  // Times out overdue rounds and starts due ones.
  void Tick(Clock::time_point now);
  // Waits in poll() for I/O, a wake-up or the next deadline, and handles it.
  void PollOnce(Clock::time_point now);
  // Runs the callback for finished rounds of targets still present.
  bool Deliver();
  Clock::duration Jittered(double low, double high);
  void Wake();

  const absl::Duration interval_;
  const absl::Duration timeout_;
  const std::string payload_;
  Callback callback_;
  const int wake_fd_;  // eventfd: Add/Remove/stop wake the poll()

  // std::mutex, not absl::Mutex: see EventLoop (TSan visibility).
  std::mutex mu_;
  std::condition_variable applied_cv_;  // RemoveTarget waits on it
  // Guarded by mu_:
  std::vector<Command> commands_;
  uint64_t queued_ = 0;   // commands ever queued
  uint64_t applied_ = 0;  // of them, applied by the prober thread
  bool running_ = false;
  bool stopping_ = false;
  std::thread::id prober_thread_id_;
  std::thread thread_;

  // Prober thread only.
  absl::flat_hash_map<std::string, std::unique_ptr<Target>> targets_;
  std::vector<Done> done_;
  uint64_t next_id_ = 0;
  std::minstd_rand rng_;
};

}  // namespace gateway
