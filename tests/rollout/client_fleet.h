// ClientFleet: a few hundred reconnecting clients with paced traffic, the
// load of the rollout emulation. Each connection picks an endpoint from the
// shared Targets at connect time (kube-proxy's role) and never moves; it obeys
// the client contract (bench::Worker's reconnecting mode): on EOF or reset it
// reconnects and resends every unanswered request.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "bench/payload.h"
#include "bench/targets.h"
#include "bench/worker.h"

namespace gateway::testing {

// What every client saw, summed once traffic has ended and settled.
struct ClientTotals {
  int conns = 0;
  int established = 0;
  uint64_t completed = 0;  // traffic responses validated
  uint64_t reconnects = 0, eofs = 0, resets = 0, refused = 0, resent = 0;
  uint64_t failed = 0, lost = 0;  // requests
  uint64_t mismatched = 0, duplicated = 0;
  uint64_t errors = 0;  // connections given up, any kind
  std::string ToString() const;
};

// $ROLLOUT_CONNS if set (a bigger run by hand, e.g. 3000), else 300.
int RolloutConns();

// Thread-compatible: one owner drives it; the clients run on its threads.
class ClientFleet {
 public:
  struct Options {
    int conns = RolloutConns();
    int threads = 2;
    absl::Duration period = absl::Milliseconds(75);  // between two frames of one connection
    absl::Duration traffic = absl::Seconds(15);      // from Start() to the end of traffic
    int payload = 64;                                // bytes per frame
  };
  ClientFleet(bench::Targets& targets, const Options& options);
  ~ClientFleet();
  ClientFleet(const ClientFleet&) = delete;
  ClientFleet& operator=(const ClientFleet&) = delete;

  // Opens and proves every connection (within 20 s), then starts the traffic.
  absl::Status Start();
  // When the paced traffic stops (responses may still arrive after).
  absl::Time traffic_end() const { return traffic_end_; }
  // Waits for the traffic to end and the outstanding responses to settle.
  ClientTotals Finish();

 private:
  const Options options_;
  const bench::PayloadPattern payload_;
  std::vector<std::unique_ptr<bench::Worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<int> connected_{0};
  std::atomic<bool> go_{false};
  std::atomic<bool> abort_{false};  // the destructor ends a run cut short
  bench::RunClock clock_;
  absl::Time traffic_end_ = absl::InfiniteFuture();
};

}  // namespace gateway::testing
