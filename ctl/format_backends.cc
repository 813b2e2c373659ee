// Backend tables.
#include "ctl/format_backends.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "ctl/names.h"

namespace gateway::ctl {
namespace {

Table NewBackendTable() {
  return Table({"TARGET", "ADDRESS", "STATE", "WEIGHT", "CONNS", "INFLIGHT", "PENDING", "REQUESTS", "RESPONSES",
                "ERRORS", "P99", "LAST_ERROR"});
}

void AddBackend(Table& table, const std::string& target, const v1::Backend& b) {
  const v1::BackendErrors& e = b.errors();
  const uint64_t errors = e.timeout() + e.reset() + e.connect() + e.protocol() + e.no_backend() + e.overload();
  table.AddRow({target, b.address(), EnumWord(b.state()), absl::StrCat(b.weight()), absl::StrCat(b.connections()),
                absl::StrCat(b.inflight()), absl::StrCat(b.pending()), absl::StrCat(b.requests()),
                absl::StrCat(b.responses()), absl::StrCat(errors), DurationText(FromProto(b.latency().p99())),
                b.last_error()});
}

}  // namespace

Table BackendsTable(const std::vector<Outcome<v1::ListBackendsResponse>>& outcomes) {
  Table table = NewBackendTable();
  for (const Outcome<v1::ListBackendsResponse>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
      continue;
    }
    for (const v1::Backend& b : o.response.backends()) AddBackend(table, o.target.address, b);
  }
  return table;
}

Table BackendTable(const std::vector<Outcome<v1::Backend>>& outcomes) {
  Table table = NewBackendTable();
  for (const Outcome<v1::Backend>& o : outcomes) {
    if (!o.status.ok()) {
      table.AddError(o.target.address, o.status);
    } else {
      AddBackend(table, o.target.address, o.response);
    }
  }
  return table;
}

}  // namespace gateway::ctl
