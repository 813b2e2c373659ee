// Sampler: once a second, the gateway's resident memory and open fds (from
// /proc/PID), the sum of its gateway_queued_bytes gauge and its active
// connections (from GET /metrics), GetStats figures, and the driver's own
// counters, kept in memory and appended to a CSV file. FlatCheck judges
// whether a series stayed flat.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/soak/control_load.h"

namespace soak {

struct Sample {
  double t_s = 0;          // since the run started
  int64_t rss_bytes = -1;  // -1: could not be read (the gateway is gone)
  int64_t fds = -1;
  bool scraped = false;     // /metrics answered
  double queued_bytes = 0;  // sum of gateway_queued_bytes; 0 if absent
  bool queued_metric = false;
  double active_metric = -1;       // gateway_connections_active
  bool stats_ok = false;           // GetStats answered
  int64_t active = -1;             // gateway_connections_active if scraped, else GetStats; -1 if neither
  int64_t queued_bytes_stats = 0;  // Stats.totals.queued_bytes
  uint64_t accepted = 0;
  uint64_t closed_total = 0;
  uint64_t frame_timeout_closes = 0;
  int trigger_mode = 0;
  uint64_t frames_answered = 0;  // the driver's counters at the same time
  uint64_t lost = 0;
  uint64_t corrupt = 0;
};

struct SamplerOptions {
  pid_t pid = 0;
  std::string metrics_host;  // empty: no scrape
  int metrics_port = 0;
  std::string metrics_path = "/metrics";
  std::string csv_path;  // empty: no CSV
  Clock::time_point start;
};

// See Scenario for threading. TakeSample() may also be called by the driver
// thread (before Start() or after Join()).
class Sampler : public Scenario {
 public:
  Sampler(const SoakTarget& target, std::shared_ptr<ControlStub> stub, const SamplerOptions& options);
  ~Sampler() override;

  Sample TakeSample();
  std::vector<Sample> samples();

 protected:
  void Run() override;

 private:
  void WriteCsv(const Sample& s);

  std::shared_ptr<ControlStub> stub_;
  const SamplerOptions options_;
  FILE* csv_ = nullptr;
  std::mutex mu_;
  std::vector<Sample> samples_;  // guarded by mu_
};

// Open fds of `pid` (entries of /proc/PID/fd); an error if unreadable.
absl::StatusOr<int64_t> CountFds(pid_t pid);
// GET http://host:port/path (HTTP/1.0, at most `timeout_ms` overall); the body.
absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path, int timeout_ms);

// Flatness of one series: the median of its last quarter against the median
// of its second quarter (the first quarter is warm-up), allowing
// `relative_slack` (0.2 = +20%) plus `absolute_slack`.
struct FlatCheck {
  bool judged = false;  // fewer than 8 values: not judged (counts as flat)
  bool flat = true;
  double second_quarter = 0;
  double last_quarter = 0;
  double limit = 0;
};
FlatCheck CheckFlat(const std::vector<double>& values, double relative_slack, double absolute_slack);

}  // namespace soak
