// Tables for the gateway-wide answers: GetStats (with a TOTAL row), the
// trigger mode and the IO model.
#pragma once

#include <vector>

#include "ctl/fanout.h"
#include "ctl/table.h"
#include "gateway/v1/control.pb.h"

namespace gateway::ctl {

// TARGET INSTANCE ACTIVE ACCEPTED CLOSED FRAMES_IN FRAMES_OUT IO_MODEL
// TRIGGER DRAINING UPTIME, then a TOTAL row summing the counts of the
// targets that answered.
Table StatsTable(const std::vector<Outcome<v1::Stats>>& outcomes);
// TARGET MODE SWITCHES.
Table TriggerModeTable(const std::vector<Outcome<v1::TriggerModeStatus>>& outcomes);
// TARGET MODEL SWITCHES LAST_SWITCH AVAILABLE.
Table IoModelTable(const std::vector<Outcome<v1::IoModelStatus>>& outcomes);

}  // namespace gateway::ctl
