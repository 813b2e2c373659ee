// RunResult: the figures of one gateway-bench run, and their two renderings:
// a human summary and one JSON line starting with {"bench": for scripts.
#pragma once

#include <cstdint>
#include <string>

#include "bench/histogram.h"
#include "bench/worker.h"

namespace bench {

struct RunResult {
  // What was asked.
  std::string label;
  std::string host;
  int port = 0;
  Mode mode = Mode::kClosedLoop;
  int conns = 0;
  int pipeline = 1;
  int size = 0;
  int threads = 1;
  double rate = 0;
  double warmup_s = 0;
  // What happened.
  int established = 0;
  double connect_s = 0;   // opening and proving every connection
  double window_s = 0;    // measured window as actually timed
  uint64_t requests = 0;  // responses completed in the window
  uint64_t unfinished = 0;
  LatencyHistogram latency;  // ns
  uint64_t errors[kNumErrorKinds] = {};
  double client_cpu_s = 0;
  bool interrupted = false;  // ended early by SIGINT/SIGTERM
  // Server side, when --server_pid was given (cpu < 0: not readable).
  int server_pid = 0;
  double server_cpu_s = -1;
  int64_t rss_before = -1, rss_after = -1;  // idle mode, bytes
  // Behind a proxy (--backend_pid): the backend's CPU time over the same window.
  int backend_pid = 0;
  double backend_cpu_s = -1;
  // --accept_error_frames: "00000" responses taken in place of real ones
  // (not errors; reported beside them).
  bool accept_error_frames = false;
  uint64_t error_frames = 0;
  // --reconnect: the client contract's figures (see WorkerCounters).
  bool reconnect = false;
  std::string targets;  // --targets as given
  uint64_t reconnects = 0, refused = 0, resets = 0, eofs = 0, resent = 0;
  uint64_t failed = 0, lost = 0;  // requests

  uint64_t total_errors() const;
  double rps() const { return window_s > 0 ? static_cast<double>(requests) / window_s : 0; }
  // Response bytes (header + payload) per second, in 10^6 bytes.
  double mbps() const { return rps() * (5.0 + size) / 1e6; }
  bool ok() const;
};

const char* ModeName(Mode mode);  // "closed", "open", "idle"
std::string FormatSummary(const RunResult& r);
std::string FormatJson(const RunResult& r);

}  // namespace bench
