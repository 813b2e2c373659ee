// Tables for upstream mode's backends: every target's backends, or the one
// backend a change answers with.
#pragma once

#include <vector>

#include "ctl/fanout.h"
#include "ctl/table.h"
#include "gateway/v1/control.pb.h"

namespace gateway::ctl {

// TARGET ADDRESS STATE WEIGHT CONNS INFLIGHT PENDING REQUESTS RESPONSES
// ERRORS P99 LAST_ERROR, one row per backend per target (ERRORS sums the
// error kinds).
Table BackendsTable(const std::vector<Outcome<v1::ListBackendsResponse>>& outcomes);
// The same for one backend per target.
Table BackendTable(const std::vector<Outcome<v1::Backend>>& outcomes);

}  // namespace gateway::ctl
