// Walks the dashboard JSON the way Grafana does: panels may nest in rows, and
// annotations and variables run their own queries.
#include "tests/monitoring/dashboard.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace gateway::testing {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Struct;
using google::protobuf::Value;

void CollectPanels(const Struct& container, std::vector<const Struct*>* out) {
  for (const Value& v : ListField(container, "panels").values()) {
    if (!v.has_struct_value()) continue;
    const Struct& panel = v.struct_value();
    if (StringField(panel, "type") != "row") out->push_back(&panel);
    CollectPanels(panel, out);  // a collapsed row holds its panels
  }
}

// label_values(selector, label) -> count by (label) (selector). Returns "" for
// any other variable query form.
std::string VariableQueryToPromql(absl::string_view query) {
  query = absl::StripAsciiWhitespace(query);
  if (!absl::ConsumePrefix(&query, "label_values(") || !absl::ConsumeSuffix(&query, ")")) return "";
  const size_t comma = query.rfind(',');
  if (comma == absl::string_view::npos) return "";
  const absl::string_view selector = absl::StripAsciiWhitespace(query.substr(0, comma));
  const absl::string_view label = absl::StripAsciiWhitespace(query.substr(comma + 1));
  return absl::StrCat("count by (", label, ") (", selector, ")");
}

}  // namespace

absl::StatusOr<Struct> ParseJsonObject(absl::string_view json) {
  Struct object;
  const auto status = google::protobuf::util::JsonStringToMessage(std::string(json), &object);
  if (!status.ok()) return absl::InvalidArgumentError(absl::StrCat("bad JSON: ", status.ToString()));
  return object;
}

std::string StringField(const Struct& object, const std::string& key) {
  const auto it = object.fields().find(key);
  return it != object.fields().end() && it->second.has_string_value() ? it->second.string_value() : "";
}

const Struct& ObjectField(const Struct& object, const std::string& key) {
  const auto it = object.fields().find(key);
  return it != object.fields().end() && it->second.has_struct_value() ? it->second.struct_value()
                                                                      : Struct::default_instance();
}

const ListValue& ListField(const Struct& object, const std::string& key) {
  const auto it = object.fields().find(key);
  return it != object.fields().end() && it->second.has_list_value() ? it->second.list_value()
                                                                    : ListValue::default_instance();
}

std::vector<const Struct*> Panels(const Struct& dashboard) {
  std::vector<const Struct*> panels;
  CollectPanels(dashboard, &panels);
  return panels;
}

std::vector<DashboardQuery> DashboardQueries(const Struct& dashboard) {
  std::vector<DashboardQuery> out;
  for (const Struct* panel : Panels(dashboard)) {
    for (const Value& t : ListField(*panel, "targets").values()) {
      out.push_back(
          {absl::StrCat("panel '", StringField(*panel, "title"), "' target ", StringField(t.struct_value(), "refId")),
           StringField(t.struct_value(), "expr")});
    }
  }
  for (const Value& a : ListField(ObjectField(dashboard, "annotations"), "list").values()) {
    const std::string expr = StringField(a.struct_value(), "expr");
    if (!expr.empty()) out.push_back({absl::StrCat("annotation '", StringField(a.struct_value(), "name"), "'"), expr});
  }
  for (const Value& v : ListField(ObjectField(dashboard, "templating"), "list").values()) {
    if (StringField(v.struct_value(), "type") != "query") continue;
    out.push_back({absl::StrCat("variable '", StringField(v.struct_value(), "name"), "'"),
                   VariableQueryToPromql(StringField(v.struct_value(), "query"))});
  }
  return out;
}

std::string SubstituteVariables(absl::string_view expr, const std::map<std::string, std::string>& values) {
  std::vector<std::pair<std::string, std::string>> names(values.begin(), values.end());
  std::sort(names.begin(), names.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  std::string out(expr);
  for (const auto& [name, value] : names) {
    out = absl::StrReplaceAll(out, {{absl::StrCat("${", name, "}"), value}, {absl::StrCat("[[", name, "]]"), value}});
    out = absl::StrReplaceAll(out, {{absl::StrCat("$", name), value}});
  }
  return out;
}

}  // namespace gateway::testing
