// SoakCounters: every count the soak driver's scenarios keep, as relaxed
// atomics the scenario threads bump and the sampler and the summary read.
// Failures (what makes the run fail) and expected outcomes (gateway closes of
// abusive connections, NOT_FOUND in a storm, capped watchers) are kept apart
// so the summary can say which is which.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace soak {

using Counter = std::atomic<uint64_t>;

// Thread-safe (relaxed atomics); shared by every scenario of one run.
struct SoakCounters {
  // Verified traffic: long-lived connections, pipelined, never a target.
  Counter frames_sent{0};      // written in full
  Counter frames_answered{0};  // verified byte for byte
  Counter bytes_answered{0};
  Counter lost{0};                   // written, then the connection ended (or the run did) before the answer
  Counter corrupt{0};                // a response byte that was not the expected one
  Counter verified_conns_broken{0};  // verified connections that the gateway closed or reset
  Counter verified_connect_errors{0};
  Counter verified_stalls{0};  // times a verified connection stopped reading for a while

  // Churn: connect, one request, verify, close (half the time after a FIN).
  Counter churn_ok{0};
  Counter churn_lost{0};     // no complete answer (reset, early EOF, timeout)
  Counter churn_corrupt{0};  // wrong answer, or bytes after it before EOF
  Counter churn_bad_end{0};  // after a FIN and its answer: a reset or no EOF instead of EOF
  Counter churn_connect_errors{0};

  // RST storms: partial or whole frames, then SO_LINGER 0.
  Counter rst_conns{0};
  Counter rst_corrupt{0};     // the variant that reads one answer first: a wrong answer
  Counter rst_unanswered{0};  // the same variant: no answer (before our RST) within 10 s
  Counter rst_connect_errors{0};

  // Slowloris: one byte per interval.
  Counter slow_opened{0};
  Counter slow_closed_by_gateway{0};  // expected with --frame_timeout
  Counter slow_completed{0};          // frame finished and answered (no frame timeout)
  Counter slow_overdue{0};            // still open well past the frame timeout
  Counter slow_corrupt{0};
  Counter slow_close_min_ms{UINT64_MAX};  // first byte -> close
  Counter slow_close_max_ms{0};

  // LT/ET flips.
  Counter flips_ok{0};
  Counter flips_failed{0};

  // CloseConnection storms on the driver's own connections.
  Counter storm_conns{0};
  Counter storm_not_listed{0};    // a connection the gateway had answered was not in ListConnections
  Counter close_ok{0};            // CloseConnection OK
  Counter close_not_found{0};     // NOT_FOUND for the right {fd, id} (acceptable in a storm)
  Counter close_other_error{0};   // any other status
  Counter graceful_checked{0};    // graceful closes whose stream was checked
  Counter graceful_bad{0};        // a graceful close that lost an answer, cut a frame or reset
  Counter force_closed{0};        // force closes (only corruption is checked)
  Counter wrong_id_not_found{0};  // {fd, wrong id} answered NOT_FOUND and the connection lived on
  Counter wrong_id_hit{0};        // {fd, wrong id} closed the connection anyway
  Counter storm_corrupt{0};
  Counter storm_unexpected{0};  // ended before its close, never ended after it, or stopped answering
  Counter storm_connect_errors{0};

  // Stalled watchers.
  Counter watchers_opened{0};
  Counter watchers_exhausted{0};  // RESOURCE_EXHAUSTED (over the gateway's cap): expected
  Counter watchers_cancelled{0};  // alive until the driver cancelled them
  Counter watchers_other{0};      // ended with another status
  Counter watcher_events_read{0};
  Counter watcher_dropped_max{0};  // largest ConnectionEvent.dropped seen

  // Sampler.
  Counter samples{0};
  Counter scrape_failures{0};
  Counter stats_failures{0};

  // Slowest control-plane calls and scrapes, in milliseconds (failed ones included).
  Counter flip_max_ms{0};
  Counter list_max_ms{0};
  Counter close_max_ms{0};
  Counter stats_max_ms{0};
  Counter scrape_max_ms{0};
};

inline void AtomicMin(Counter& c, uint64_t v) {
  uint64_t old = c.load(std::memory_order_relaxed);
  while (v < old && !c.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
}

inline void AtomicMax(Counter& c, uint64_t v) {
  uint64_t old = c.load(std::memory_order_relaxed);
  while (v > old && !c.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
}

inline uint64_t Get(const Counter& c) { return c.load(std::memory_order_relaxed); }

// Records the milliseconds since `start` into `c` if it is the largest yet.
template <typename TimePoint>
void RecordMaxMs(Counter& c, TimePoint start) {
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(TimePoint::clock::now() - start);
  AtomicMax(c, static_cast<uint64_t>(std::max<int64_t>(0, elapsed.count())));
}

}  // namespace soak
