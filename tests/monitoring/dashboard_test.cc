// Structure checks on the provisioned Grafana files, no server needed: the
// dashboard's panels all query the provisioned datasource with PromQL, cover
// what an operator needs, and use only variables that exist; the
// provisioning files point where docker-compose.yml mounts them.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/monitoring/dashboard.h"
#include "tests/support/subprocess.h"

namespace gateway::testing {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const std::string kGrafana = std::string(GATEWAY_SOURCE_DIR) + "/deploy/grafana";

// The datasource uid the provisioning file gives (its one `uid:` key; no
// YAML parser needed for that).
std::string ProvisionedDatasourceUid() {
  const std::string yml = ReadFileOrEmpty(kGrafana + "/provisioning/datasources/prometheus.yml");
  for (absl::string_view line : absl::StrSplit(yml, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::ConsumePrefix(&line, "uid:")) return std::string(absl::StripAsciiWhitespace(line));
  }
  return "";
}

// Returns the names of the $name / ${name} variables `expr` uses.
std::vector<std::string> VariablesIn(absl::string_view expr) {
  std::vector<std::string> names;
  for (size_t i = expr.find('$'); i != absl::string_view::npos; i = expr.find('$', i + 1)) {
    size_t start = i + 1;
    if (start < expr.size() && expr[start] == '{') ++start;
    size_t end = start;
    while (end < expr.size() && (absl::ascii_isalnum(expr[end]) || expr[end] == '_')) ++end;
    names.emplace_back(expr.substr(start, end - start));
  }
  return names;
}

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string json = ReadFileOrEmpty(kGrafana + "/dashboards/gateway.json");
    ASSERT_FALSE(json.empty()) << "cannot read the dashboard";
    absl::StatusOr<Struct> parsed = ParseJsonObject(json);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    dashboard_ = *std::move(parsed);
    uid_ = ProvisionedDatasourceUid();
    ASSERT_FALSE(uid_.empty());
  }

  void ExpectProvisionedDatasource(const Struct& holder, const std::string& where) {
    const Struct& ds = ObjectField(holder, "datasource");
    EXPECT_EQ(StringField(ds, "type"), "prometheus") << where;
    EXPECT_EQ(StringField(ds, "uid"), uid_) << where;
  }

  std::string AllExpressions() const {
    std::string all;
    for (const DashboardQuery& q : DashboardQueries(dashboard_)) absl::StrAppend(&all, q.expr, "\n");
    return all;
  }

  Struct dashboard_;
  std::string uid_;
};

TEST_F(DashboardTest, HasAStableIdentity) {
  EXPECT_EQ(StringField(dashboard_, "uid"), "connection-gateway");
  EXPECT_FALSE(StringField(dashboard_, "title").empty());
  EXPECT_GE(dashboard_.fields().at("schemaVersion").number_value(), 36);
}

TEST_F(DashboardTest, EveryPanelQueriesTheProvisionedDatasourceWithPromql) {
  const std::vector<const Struct*> panels = Panels(dashboard_);
  ASSERT_GE(panels.size(), 15u);
  std::set<double> ids;
  for (const Struct* panel : panels) {
    const std::string title = StringField(*panel, "title");
    EXPECT_FALSE(title.empty());
    EXPECT_TRUE(ids.insert(panel->fields().at("id").number_value()).second) << "duplicate id: " << title;
    ExpectProvisionedDatasource(*panel, title);
    const Struct& pos = ObjectField(*panel, "gridPos");
    EXPECT_LE(pos.fields().at("x").number_value() + pos.fields().at("w").number_value(), 24) << title;
    const auto& targets = ListField(*panel, "targets").values();
    ASSERT_FALSE(targets.empty()) << title;
    std::set<std::string> ref_ids;
    for (const Value& t : targets) {
      ExpectProvisionedDatasource(t.struct_value(), title);
      EXPECT_FALSE(StringField(t.struct_value(), "expr").empty()) << title;
      EXPECT_TRUE(ref_ids.insert(StringField(t.struct_value(), "refId")).second) << title;
    }
  }
}

TEST_F(DashboardTest, PanelsDoNotOverlap) {
  struct Box {
    double x, y, w, h;
    std::string title;
  };
  std::vector<Box> boxes;
  for (const Value& v : ListField(dashboard_, "panels").values()) {
    const Struct& pos = ObjectField(v.struct_value(), "gridPos");
    boxes.push_back({pos.fields().at("x").number_value(), pos.fields().at("y").number_value(),
                     pos.fields().at("w").number_value(), pos.fields().at("h").number_value(),
                     StringField(v.struct_value(), "title")});
  }
  for (size_t i = 0; i < boxes.size(); ++i) {
    for (size_t j = i + 1; j < boxes.size(); ++j) {
      const Box& a = boxes[i];
      const Box& b = boxes[j];
      const bool overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
      EXPECT_FALSE(overlap) << a.title << " overlaps " << b.title;
    }
  }
}

TEST_F(DashboardTest, CoversWhatAnOperatorNeeds) {
  const std::string all = AllExpressions();
  for (const char* needed : {
           "gateway_connections_active",
           "sum by (state) (gateway_connections{",
           "gateway_connections_accepted_total",
           "gateway_connections_rejected_total",
           "sum by (reason) (rate(gateway_connections_closed_total{",
           "gateway_frames_received_total",
           "gateway_frames_sent_total",
           "gateway_bytes_received_total",
           "gateway_bytes_sent_total",
           "gateway_protocol_errors_total",
           "histogram_quantile(0.5, sum by (le) (rate(gateway_request_duration_seconds_bucket",
           "histogram_quantile(0.99, sum by (le) (rate(gateway_request_duration_seconds_bucket",
           "histogram_quantile(0.999, sum by (le) (rate(gateway_request_duration_seconds_bucket",
           "gateway_epoll_wait_events_sum",
           "gateway_epoll_wait_events_count",
           "gateway_trigger_mode{",
           "gateway_io_model{",
           "rate(gateway_io_model_switches_total{",
           "gateway_io_model_switch_duration_seconds{",
           "sum by (instance, reactor) (rate(gateway_frames_received_total",
           "process_open_fds",
           "sum by (backend) (rate(gateway_upstream_requests_total{",
           "sum by (backend) (rate(gateway_upstream_responses_total{",
           "sum by (backend, reason) (rate(gateway_upstream_errors_total{",
           "sum by (reason) (rate(gateway_upstream_unrouted_total{",
           "sum by (backend) (gateway_upstream_inflight{",
           "sum by (backend) (gateway_upstream_pending{",
           "gateway_upstream_backend_state{",
           "gateway_upstream_healthy{",
           "sum by (backend) (gateway_upstream_connections{",
           "histogram_quantile(0.5, sum by (backend, le) (rate(gateway_upstream_request_duration_seconds_bucket{",
           "histogram_quantile(0.99, sum by (backend, le) (rate(gateway_upstream_request_duration_seconds_bucket{",
           "gateway_upstream_write_frames_sum{",
           "gateway_upstream_write_frames_count{",
       }) {
    EXPECT_TRUE(absl::StrContains(all, needed)) << needed;
  }
}

TEST_F(DashboardTest, AnnotatesTriggerModeAndIoModelSwitches) {
  // The counter whose changes mark a switch, and the label naming where it went.
  for (const auto& [counter, label] : {std::pair{"gateway_trigger_mode_switches_total", "{{mode}}"},
                                       std::pair{"gateway_io_model_switches_total", "{{model}}"}}) {
    bool found = false;
    for (const Value& a : ListField(ObjectField(dashboard_, "annotations"), "list").values()) {
      const std::string expr = StringField(a.struct_value(), "expr");
      if (!absl::StrContains(expr, absl::StrCat("changes(", counter))) continue;
      found = true;
      ExpectProvisionedDatasource(a.struct_value(), "annotation");
      EXPECT_TRUE(a.struct_value().fields().at("enable").bool_value()) << counter;
      EXPECT_TRUE(absl::StrContains(StringField(a.struct_value(), "titleFormat"), label)) << counter;
    }
    EXPECT_TRUE(found) << counter;
  }
}

// The IO-model timeline encodes the model as its gateway.v1.IoModel number
// and maps each number back to the model's name.
TEST_F(DashboardTest, IoModelTimelineNamesEveryModel) {
  const Struct* timeline = nullptr;
  for (const Struct* panel : Panels(dashboard_)) {
    if (StringField(*panel, "type") == "state-timeline" && StringField(*panel, "title") == "IO model") timeline = panel;
  }
  ASSERT_NE(timeline, nullptr);
  const std::string expr = StringField(ListField(*timeline, "targets").values(0).struct_value(), "expr");
  const Struct& mapping =
      ListField(ObjectField(ObjectField(*timeline, "fieldConfig"), "defaults"), "mappings").values(0).struct_value();
  const Struct& options = ObjectField(mapping, "options");
  const std::vector<std::string> models = {"select", "poll", "epoll", "io_uring", "blocking", "signal"};
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string number = absl::StrCat(i + 1);
    EXPECT_TRUE(absl::StrContains(expr, absl::StrCat(number, " * max by (instance) (gateway_io_model{")));
    EXPECT_TRUE(absl::StrContains(expr, absl::StrCat("model=\"", models[i], "\"")));
    EXPECT_EQ(StringField(ObjectField(options, number), "text"), models[i]);
  }
}

// Every upstream panel sits in the "Upstreams" row (below it, and it is the
// last row), and nothing else does.
TEST_F(DashboardTest, UpstreamsRowHoldsExactlyTheUpstreamPanels) {
  double row_y = -1;
  for (const Value& v : ListField(dashboard_, "panels").values()) {
    const Struct& panel = v.struct_value();
    if (StringField(panel, "type") == "row" && StringField(panel, "title") == "Upstreams") {
      row_y = ObjectField(panel, "gridPos").fields().at("y").number_value();
    }
  }
  ASSERT_GE(row_y, 0) << "no Upstreams row";
  int upstream_panels = 0;
  for (const Value& v : ListField(dashboard_, "panels").values()) {
    const Struct& panel = v.struct_value();
    const std::string title = StringField(panel, "title");
    const double y = ObjectField(panel, "gridPos").fields().at("y").number_value();
    if (StringField(panel, "type") == "row") {
      EXPECT_LE(y, row_y) << "row " << title << " comes after Upstreams";
      continue;
    }
    bool upstream = false;
    for (const Value& t : ListField(panel, "targets").values()) {
      const bool this_one = absl::StrContains(StringField(t.struct_value(), "expr"), "gateway_upstream_");
      if (this_one) upstream = true;
      if (y > row_y) {
        EXPECT_TRUE(this_one) << title << " is in the Upstreams row";
      }
    }
    if (upstream) {
      ++upstream_panels;
      EXPECT_GT(y, row_y) << title << " is outside the Upstreams row";
    }
  }
  EXPECT_GE(upstream_panels, 7);
}

// The backend-state timeline encodes each state as a number (1 healthy,
// 2 unhealthy, 3 draining, 4 ejected) and maps each number back to its name.
TEST_F(DashboardTest, BackendStateTimelineNamesEveryState) {
  const Struct* timeline = nullptr;
  for (const Struct* panel : Panels(dashboard_)) {
    if (StringField(*panel, "type") == "state-timeline" && StringField(*panel, "title") == "Backend state") {
      timeline = panel;
    }
  }
  ASSERT_NE(timeline, nullptr);
  const std::string expr = StringField(ListField(*timeline, "targets").values(0).struct_value(), "expr");
  const Struct& mapping =
      ListField(ObjectField(ObjectField(*timeline, "fieldConfig"), "defaults"), "mappings").values(0).struct_value();
  const Struct& options = ObjectField(mapping, "options");
  const std::vector<std::string> states = {"healthy", "unhealthy", "draining", "ejected"};
  for (size_t i = 0; i < states.size(); ++i) {
    const std::string number = absl::StrCat(i + 1);
    EXPECT_TRUE(absl::StrContains(
        expr, absl::StrCat(number, " * max by (instance, backend) (gateway_upstream_backend_state{")));
    EXPECT_TRUE(absl::StrContains(expr, absl::StrCat("state=\"", states[i], "\"")));
    EXPECT_EQ(StringField(ObjectField(options, number), "text"), states[i]);
  }
}

TEST_F(DashboardTest, UsesOnlyDefinedVariables) {
  std::set<std::string> defined = {"__rate_interval", "__interval", "__range"};
  for (const Value& v : ListField(ObjectField(dashboard_, "templating"), "list").values()) {
    defined.insert(StringField(v.struct_value(), "name"));
    ExpectProvisionedDatasource(v.struct_value(), "variable");
  }
  for (const DashboardQuery& q : DashboardQueries(dashboard_)) {
    ASSERT_FALSE(q.expr.empty()) << q.where << " has a query Grafana cannot run here";
    for (const std::string& name : VariablesIn(q.expr)) {
      EXPECT_EQ(defined.count(name), 1u) << q.where << " uses undefined $" << name;
    }
  }
}

TEST_F(DashboardTest, SubstitutesGrafanaVariables) {
  const std::map<std::string, std::string> values = {
      {"__rate_interval", "4s"}, {"__interval", "1s"}, {"__range", "60s"}, {"job", "gateway"}, {"instance", ".+"}};
  EXPECT_EQ(
      SubstituteVariables(R"(rate(x{job="$job",instance=~"${instance}"}[$__rate_interval]) [$__interval])", values),
      R"(rate(x{job="gateway",instance=~".+"}[4s]) [1s])");
  for (const DashboardQuery& q : DashboardQueries(dashboard_)) {
    EXPECT_FALSE(absl::StrContains(SubstituteVariables(q.expr, values), "$")) << q.where;
  }
}

TEST(GrafanaProvisioningTest, PointsWhereTheComposeFileMountsIt) {
  const std::string datasource = ReadFileOrEmpty(kGrafana + "/provisioning/datasources/prometheus.yml");
  EXPECT_TRUE(absl::StrContains(datasource, "url: http://prometheus:9090")) << datasource;
  EXPECT_TRUE(absl::StrContains(datasource, "type: prometheus"));
  const std::string providers = ReadFileOrEmpty(kGrafana + "/provisioning/dashboards/dashboards.yml");
  EXPECT_TRUE(absl::StrContains(providers, "type: file"));
  EXPECT_TRUE(absl::StrContains(providers, "path: /var/lib/grafana/dashboards")) << providers;
  const std::string compose = ReadFileOrEmpty(std::string(GATEWAY_SOURCE_DIR) + "/docker-compose.yml");
  EXPECT_TRUE(absl::StrContains(compose, "./deploy/grafana/provisioning:/etc/grafana/provisioning"));
  EXPECT_TRUE(absl::StrContains(compose, "./deploy/grafana/dashboards:/var/lib/grafana/dashboards"));
}

}  // namespace
}  // namespace gateway::testing
