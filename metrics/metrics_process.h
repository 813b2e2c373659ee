// process_* metrics in the form every Prometheus client library exports them
// (CPU time, memory, open and maximum file descriptors, start time), read from
// /proc/self on each scrape. For a connection gateway, open fds against the
// limit is the first thing to watch.
#pragma once

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace gateway {

// Thread-safe: Collect() reads /proc and keeps no mutable state. A family
// whose source cannot be read is left out of the scrape rather than reported
// as zero.
class ProcessCollector final : public prometheus::Collectable {
 public:
  ProcessCollector();
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  double start_time_seconds_ = 0;  // 0 if /proc could not be read
};

}  // namespace gateway
