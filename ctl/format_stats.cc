// Stats and mode tables.
#include "ctl/format_stats.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "ctl/names.h"

namespace gateway::ctl {

Table StatsTable(const std::vector<Outcome<v1::Stats>>& outcomes) {
  Table table({"TARGET", "INSTANCE", "ACTIVE", "ACCEPTED", "CLOSED", "FRAMES_IN", "FRAMES_OUT", "IO_MODEL", "TRIGGER",
               "DRAINING", "UPTIME"});
  int64_t active = 0;
  uint64_t accepted = 0, closed = 0, frames_in = 0, frames_out = 0;
  for (const Outcome<v1::Stats>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
      continue;
    }
    const v1::Stats& s = o.response;
    active += s.active_connections();
    accepted += s.totals().accepted();
    closed += s.totals().closed_total();
    frames_in += s.totals().frames_in();
    frames_out += s.totals().frames_out();
    table.AddRow({o.target.address, s.instance(), absl::StrCat(s.active_connections()),
                  absl::StrCat(s.totals().accepted()), absl::StrCat(s.totals().closed_total()),
                  absl::StrCat(s.totals().frames_in()), absl::StrCat(s.totals().frames_out()), EnumWord(s.io_model()),
                  EnumWord(s.trigger_mode()), s.draining() ? "yes" : "no", AgeText(FromProto(s.uptime()))});
  }
  table.AddRow({"TOTAL", "", absl::StrCat(active), absl::StrCat(accepted), absl::StrCat(closed),
                absl::StrCat(frames_in), absl::StrCat(frames_out)});
  return table;
}

Table TriggerModeTable(const std::vector<Outcome<v1::TriggerModeStatus>>& outcomes) {
  Table table({"TARGET", "MODE", "SWITCHES"});
  for (const Outcome<v1::TriggerModeStatus>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
    } else {
      table.AddRow({o.target.address, EnumWord(o.response.mode()), absl::StrCat(o.response.switches())});
    }
  }
  return table;
}

Table IoModelTable(const std::vector<Outcome<v1::IoModelStatus>>& outcomes) {
  Table table({"TARGET", "MODEL", "SWITCHES", "LAST_SWITCH", "AVAILABLE"});
  for (const Outcome<v1::IoModelStatus>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
      continue;
    }
    std::vector<std::string> available;
    for (const int model : o.response.available()) available.push_back(EnumWord(static_cast<v1::IoModel>(model)));
    table.AddRow({o.target.address, EnumWord(o.response.model()), absl::StrCat(o.response.switches()),
                  DurationText(FromProto(o.response.last_switch_duration())), absl::StrJoin(available, ",")});
  }
  return table;
}

}  // namespace gateway::ctl
