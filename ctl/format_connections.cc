// Connection tables.
#include "ctl/format_connections.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "ctl/names.h"

namespace gateway::ctl {
namespace {

Table NewConnectionTable() {
  return Table({"TARGET", "FD", "ID", "PEER", "STATE", "REACTOR", "BYTES_IN", "BYTES_OUT", "FRAMES_IN", "FRAMES_OUT",
                "AGE", "IDLE"});
}

void AddConnection(Table& table, const std::string& target, const v1::Connection& c, absl::Time now) {
  table.AddRow({target, absl::StrCat(c.fd()), absl::StrCat(c.id()), c.peer(), EnumWord(c.state()),
                absl::StrCat(c.reactor()), absl::StrCat(c.bytes_in()), absl::StrCat(c.bytes_out()),
                absl::StrCat(c.frames_in()), absl::StrCat(c.frames_out()), AgeText(now - FromProto(c.opened_at())),
                AgeText(now - FromProto(c.last_active_at()))});
}

}  // namespace

Table ConnectionsTable(const std::vector<Outcome<v1::ListConnectionsResponse>>& outcomes, absl::Time now) {
  Table table = NewConnectionTable();
  for (const Outcome<v1::ListConnectionsResponse>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
      continue;
    }
    for (const v1::Connection& c : o.response.connections()) AddConnection(table, o.target.address, c, now);
  }
  return table;
}

Table ConnectionTable(const std::vector<Outcome<v1::Connection>>& outcomes, absl::Time now) {
  Table table = NewConnectionTable();
  for (const Outcome<v1::Connection>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
    } else {
      AddConnection(table, o.target.address, o.response, now);
    }
  }
  return table;
}

Table CloseTable(const std::vector<Outcome<v1::CloseConnectionResponse>>& outcomes, int fd) {
  Table table({"TARGET", "FD", "RESULT"});
  for (const Outcome<v1::CloseConnectionResponse>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
    } else {
      table.AddRow({o.target.address, absl::StrCat(fd), "closed"});
    }
  }
  return table;
}

Table DrainTable(const std::vector<Outcome<v1::DrainConnectionsResponse>>& outcomes) {
  Table table({"TARGET", "SELECTED", "MATCHING"});
  uint64_t selected = 0, matching = 0;
  for (const Outcome<v1::DrainConnectionsResponse>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
      continue;
    }
    selected += o.response.selected();
    matching += o.response.matching();
    table.AddRow({o.target.address, absl::StrCat(o.response.selected()), absl::StrCat(o.response.matching())});
  }
  table.AddRow({"TOTAL", absl::StrCat(selected), absl::StrCat(matching)});
  return table;
}

}  // namespace gateway::ctl
