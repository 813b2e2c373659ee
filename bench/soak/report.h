// SoakReport: what a soak run ends with (its samples' verdicts, the gateway's
// state once everything closed, its exit status), Judge() which turns that
// and the counters into a list of failures, and the two renderings: a summary
// for people and one JSON line for scripts.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/soak/counters.h"
#include "bench/soak/sampler.h"

namespace soak {

struct Thresholds {
  double rss_slack = 0.2;                // flat RSS: +20% over the second quarter's median
  double fd_slack = 64;                  // flat fds: +64
  double queued_slack_bytes = 16 << 20;  // flat queued bytes: x1.5 + this
  int settle_fd_slack = 16;              // fds once everything closed: at most baseline + this
};

struct SoakReport {
  double seconds = 0;  // how long the loads ran
  uint64_t seed = 0;
  pid_t pid = 0;
  int frame_timeout_ms = 0;  // 0: slowloris closes not expected
  bool died = false;
  bool interrupted = false;
  int gateway_exit = -1;  // exit status on SIGTERM; -1 when attached
  Sample baseline;        // before the loads
  Sample settled;         // after them, once the gateway was back to no connections (or gave up)
  bool settled_ok = false;
  bool final_stats_ok = false;
  v1::Stats final_stats;
  std::vector<std::string> notes;
  // Filled by Judge().
  Sample first, last;
  bool queued_metric = false;
  double queued_max = 0;
  FlatCheck rss, fds, queued;
  std::vector<std::string> failures;
};

// Answers lost and corrupt over every scenario.
uint64_t TotalLost(const SoakCounters& c);
uint64_t TotalCorrupt(const SoakCounters& c);

// Judges the run: flatness of the samples and every failure condition.
void Judge(const SoakCounters& c, const std::vector<Sample>& samples, const Thresholds& t, SoakReport* r);
void PrintSummary(const SoakCounters& c, const SoakReport& r, FILE* out);
// One line, starting with {"soak":.
std::string SummaryJson(const SoakCounters& c, const SoakReport& r);

}  // namespace soak
