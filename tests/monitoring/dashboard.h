// Test helpers for the Grafana dashboard: JSON parsed into
// google::protobuf::Struct (no JSON library beyond protobuf), every PromQL
// query the dashboard runs (panel targets, annotations, variables), and
// Grafana's variable substitution.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"

namespace gateway::testing {

// Parses a JSON object.
absl::StatusOr<google::protobuf::Struct> ParseJsonObject(absl::string_view json);

// Returns the string at `key`, or "" if absent or not a string.
std::string StringField(const google::protobuf::Struct& object, const std::string& key);
// Returns the object at `key`, or an empty one.
const google::protobuf::Struct& ObjectField(const google::protobuf::Struct& object, const std::string& key);
// Returns the list at `key`, or an empty one.
const google::protobuf::ListValue& ListField(const google::protobuf::Struct& object, const std::string& key);

struct DashboardQuery {
  std::string where;  // e.g. "panel 'Bytes / s' target B"
  std::string expr;
};

// Every panel, rows' nested panels included, rows themselves excluded.
std::vector<const google::protobuf::Struct*> Panels(const google::protobuf::Struct& dashboard);

// Every PromQL expression Grafana evaluates for the dashboard: each panel
// target, each annotation with an expr, and each query variable
// (label_values(selector, label) becomes `count by (label) (selector)`).
std::vector<DashboardQuery> DashboardQueries(const google::protobuf::Struct& dashboard);

// Replaces $name, ${name} and [[name]] for every entry of `values`
// (longest names first, so $__range does not eat $__range_s).
std::string SubstituteVariables(absl::string_view expr, const std::map<std::string, std::string>& values);

}  // namespace gateway::testing
