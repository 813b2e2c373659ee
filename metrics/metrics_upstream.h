// The gateway_upstream_* families of upstream mode: per backend (label
// `backend`, its "host:port" as configured) from Gateway::ListBackends(), and
// the reactors' unrouted errors and frames per upstream write, summed over
// reactors.
#pragma once

#include <vector>

#include "gateway/reactor_stats.h"
#include "gateway/upstream_types.h"
#include "prometheus/metric_family.h"

namespace gateway {

// Appends every gateway_upstream_* family, each built from `backends` and
// `reactors` alone: a backend that is no longer listed has no series left
// (none linger at their last values). Pure; any thread.
void AppendUpstreamFamilies(const std::vector<BackendInfo>& backends, const std::vector<const ReactorStats*>& reactors,
                            std::vector<prometheus::MetricFamily>* out);

}  // namespace gateway
