// Tables for the per-connection answers: a merged listing (every target's
// connections, target by target, each sorted by fd as the gateway sends
// them), one connection, a close and a drain.
#pragma once

#include <vector>

#include "absl/time/time.h"
#include "ctl/fanout.h"
#include "ctl/table.h"
#include "gateway/v1/control.pb.h"

namespace gateway::ctl {

// TARGET FD ID PEER STATE REACTOR BYTES_IN BYTES_OUT FRAMES_IN FRAMES_OUT AGE
// IDLE; AGE and IDLE are measured to `now` (this machine's clock).
Table ConnectionsTable(const std::vector<Outcome<v1::ListConnectionsResponse>>& outcomes, absl::Time now);
// The same columns for GetConnection.
Table ConnectionTable(const std::vector<Outcome<v1::Connection>>& outcomes, absl::Time now);
// TARGET FD RESULT.
Table CloseTable(const std::vector<Outcome<v1::CloseConnectionResponse>>& outcomes, int fd);
// TARGET SELECTED MATCHING, then a TOTAL row.
Table DrainTable(const std::vector<Outcome<v1::DrainConnectionsResponse>>& outcomes);

}  // namespace gateway::ctl
