// What gatewayctl prints, byte for byte: tables (with error rows and
// TOTALs), the JSON document, event lines, enum words, durations, exit codes.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "ctl/format_backends.h"
#include "ctl/format_connections.h"
#include "ctl/format_events.h"
#include "ctl/format_stats.h"
#include "ctl/names.h"
#include "ctl/output.h"
#include "ctl/table.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace gateway::ctl {
namespace {

const absl::Status kDown = absl::UnavailableError("failed to connect");

template <typename M>
Outcome<M> Ok(const std::string& target, M response) {
  return Outcome<M>{Target{target}, absl::OkStatus(), std::move(response)};
}
template <typename M>
Outcome<M> Failed(const std::string& target) {
  return Outcome<M>{Target{target}, kDown, M()};
}

TEST(TableTest, AlignsColumnsAndLetsErrorsRunPast) {
  Table table({"TARGET", "A", "LONGER"});
  table.AddRow({"t1:1", "12345", ""});
  table.AddError("target-two:2", absl::NotFoundError("no such fd"));
  table.AddRow({"t3:3", "1", "x"});
  EXPECT_EQ(table.Render(),
            "TARGET        A      LONGER\n"
            "t1:1          12345\n"
            "target-two:2  error: NOT_FOUND: no such fd\n"
            "t3:3          1      x\n");
}

v1::Stats MakeStats(const std::string& instance, int64_t active, uint64_t accepted, bool draining) {
  v1::Stats s;
  s.set_instance(instance);
  s.set_active_connections(active);
  s.mutable_totals()->set_accepted(accepted);
  s.mutable_totals()->set_closed_total(accepted - active);
  s.mutable_totals()->set_frames_in(10 * accepted);
  s.mutable_totals()->set_frames_out(10 * accepted);
  s.set_io_model(v1::IO_MODEL_EPOLL);
  s.set_trigger_mode(v1::TRIGGER_MODE_EDGE);
  s.set_draining(draining);
  s.mutable_uptime()->set_seconds(3725);
  return s;
}

TEST(FormatTest, StatsTableHasARowPerTargetAndATotal) {
  std::vector<Outcome<v1::Stats>> outcomes = {Ok("10.0.0.1:50051", MakeStats("gw-a", 2, 5, false)),
                                              Failed<v1::Stats>("10.0.0.2:50051"),
                                              Ok("10.0.0.3:50051", MakeStats("gw-c", 4, 4, true))};
  EXPECT_EQ(StatsTable(outcomes).Render(),
            "TARGET          INSTANCE  ACTIVE  ACCEPTED  CLOSED  FRAMES_IN  FRAMES_OUT  IO_MODEL  TRIGGER  DRAINING  "
            "UPTIME\n"
            "10.0.0.1:50051  gw-a      2       5         3       50         50          epoll     edge     no        "
            "1h2m\n"
            "10.0.0.2:50051  error: UNAVAILABLE: failed to connect\n"
            "10.0.0.3:50051  gw-c      4       4         0       40         40          epoll     edge     yes       "
            "1h2m\n"
            "TOTAL                     6       9         3       90         90\n");
}

TEST(FormatTest, ConnectionsTableMergesTargetsInOrder) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  auto connection = [&](int fd, uint64_t id, int age_s, int idle_s) {
    v1::Connection c;
    c.set_fd(fd);
    c.set_id(id);
    c.set_peer(absl::StrCat("127.0.0.1:4000", fd));
    c.set_state(v1::CONNECTION_STATE_READ);
    c.set_reactor(fd % 2);
    c.set_bytes_in(8);
    c.set_bytes_out(8);
    c.set_frames_in(1);
    c.set_frames_out(1);
    c.mutable_opened_at()->set_seconds(absl::ToUnixSeconds(now) - age_s);
    c.mutable_last_active_at()->set_seconds(absl::ToUnixSeconds(now) - idle_s);
    return c;
  };
  v1::ListConnectionsResponse a, b;
  *a.add_connections() = connection(7, 1, 75, 3);
  *a.add_connections() = connection(9, 4, 5, 5);
  *b.add_connections() = connection(8, 2, 90000, 0);
  std::vector<Outcome<v1::ListConnectionsResponse>> outcomes = {
      Ok("a:1", a), Failed<v1::ListConnectionsResponse>("down:1"), Ok("b:1", b)};
  EXPECT_EQ(ConnectionsTable(outcomes, now).Render(),
            "TARGET  FD  ID  PEER             STATE  REACTOR  BYTES_IN  BYTES_OUT  FRAMES_IN  FRAMES_OUT  AGE    "
            "IDLE\n"
            "a:1     7   1   127.0.0.1:40007  read   1        8         8          1          1           1m15s  3s\n"
            "a:1     9   4   127.0.0.1:40009  read   1        8         8          1          1           5s     5s\n"
            "down:1  error: UNAVAILABLE: failed to connect\n"
            "b:1     8   2   127.0.0.1:40008  read   0        8         8          1          1           1d1h   0s\n");
}

TEST(FormatTest, DrainTableTotals) {
  v1::DrainConnectionsResponse one, two;
  one.set_selected(3);
  one.set_matching(10);
  two.set_selected(1);
  two.set_matching(2);
  std::vector<Outcome<v1::DrainConnectionsResponse>> outcomes = {Ok("a:1", one), Ok("b:1", two)};
  EXPECT_EQ(DrainTable(outcomes).Render(),
            "TARGET  SELECTED  MATCHING\n"
            "a:1     3         10\n"
            "b:1     1         2\n"
            "TOTAL   4         12\n");
}

TEST(FormatTest, ModeTables) {
  v1::TriggerModeStatus level;
  level.set_mode(v1::TRIGGER_MODE_LEVEL);
  level.set_switches(2);
  EXPECT_EQ(TriggerModeTable({Ok("a:1", level)}).Render(),
            "TARGET  MODE   SWITCHES\n"
            "a:1     level  2\n");
  v1::IoModelStatus uring;
  uring.set_model(v1::IO_MODEL_IO_URING);
  uring.set_switches(1);
  uring.mutable_last_switch_duration()->set_nanos(1'234'567);
  uring.add_available(v1::IO_MODEL_POLL);
  uring.add_available(v1::IO_MODEL_IO_URING);
  EXPECT_EQ(IoModelTable({Ok("a:1", uring)}).Render(),
            "TARGET  MODEL     SWITCHES  LAST_SWITCH  AVAILABLE\n"
            "a:1     io_uring  1         1.23ms       poll,io_uring\n");
}

TEST(FormatTest, BackendTable) {
  v1::Backend b;
  b.set_address("10.0.0.9:7000");
  b.set_state(v1::BACKEND_STATE_DRAINING);
  b.set_weight(3);
  b.set_requests(10);
  b.set_responses(8);
  b.mutable_errors()->set_timeout(1);
  b.mutable_errors()->set_reset(1);
  b.mutable_latency()->mutable_p99()->set_nanos(850'000);
  b.set_last_error("connection refused");
  EXPECT_EQ(BackendTable({Ok("a:1", b)}).Render(),
            "TARGET  ADDRESS        STATE     WEIGHT  CONNS  INFLIGHT  PENDING  REQUESTS  RESPONSES  ERRORS  P99    "
            "LAST_ERROR\n"
            "a:1     10.0.0.9:7000  draining  3       0      0         0        10        8          2       850us  "
            "connection refused\n");
}

TEST(FormatTest, JsonDocumentHasEveryTargetsResultOrError) {
  v1::DrainConnectionsResponse drained;
  drained.set_selected(2);
  std::vector<JsonResult> results = {{"a:1", absl::OkStatus(), &drained},
                                     {"b:1", absl::UnavailableError("said \"no\"\n"), nullptr}};
  const std::string json = ResultsJson(results);
  EXPECT_EQ(json,
            "{\"targets\":2,\"failed\":1,\"results\":[\n"
            "{\"target\":\"a:1\",\"response\":{\"selected\":2,\"matching\":0}},\n"
            "{\"target\":\"b:1\",\"error\":{\"code\":\"UNAVAILABLE\",\"message\":\"said \\\"no\\\"\\u000a\"}}\n"
            "]}\n");
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) << json;
  EXPECT_EQ(parsed.fields().at("results").list_value().values_size(), 2);
}

TEST(FormatTest, ConnectionEventLines) {
  v1::ConnectionEvent closed;
  closed.set_type(v1::ConnectionEvent::TYPE_CLOSED);
  closed.mutable_time()->set_seconds(1'800'000'000);
  closed.mutable_time()->set_nanos(123'456'789);
  closed.set_close_reason(v1::CLOSE_REASON_DRAINED);
  closed.set_dropped(4);
  v1::Connection* c = closed.mutable_connection();
  c->set_fd(17);
  c->set_id(3);
  c->set_peer("127.0.0.1:40112");
  c->set_frames_in(2);
  c->set_frames_out(2);
  EXPECT_EQ(ConnectionEventLine("a:1", closed),
            "a:1 2027-01-15T08:00:00.123Z closed fd=17 id=3 peer=127.0.0.1:40112 reason=drained frames_in=2 "
            "frames_out=2 dropped=4");
  v1::ConnectionEvent switched;
  switched.set_type(v1::ConnectionEvent::TYPE_IO_MODEL_SWITCHED);
  switched.mutable_io_model_switch()->set_old_model(v1::IO_MODEL_EPOLL);
  switched.mutable_io_model_switch()->set_new_model(v1::IO_MODEL_POLL);
  switched.mutable_io_model_switch()->mutable_duration()->set_nanos(2'500'000);
  EXPECT_EQ(ConnectionEventLine("a:1", switched),
            "a:1 1970-01-01T00:00:00.000Z io_model_switched epoll->poll in 2.5ms");
  EXPECT_TRUE(absl::StartsWith(EventJsonLine("a:1", switched),
                               "{\"target\":\"a:1\",\"event\":{\"type\":\"TYPE_IO_MODEL_SWITCHED\""));
}

TEST(FormatTest, BackendEventLine) {
  v1::BackendEvent e;
  e.set_type(v1::BackendEvent::TYPE_STATE_CHANGED);
  e.set_old_state(v1::BACKEND_STATE_HEALTHY);
  e.mutable_backend()->set_address("10.0.0.9:7000");
  e.mutable_backend()->set_state(v1::BACKEND_STATE_EJECTED);
  e.set_reason("ejected: 5 errors");
  EXPECT_EQ(BackendEventLine("a:1", e),
            "a:1 1970-01-01T00:00:00.000Z state_changed address=10.0.0.9:7000 healthy->ejected "
            "reason=\"ejected: 5 errors\"");
}

TEST(NamesTest, EnumWordsBothWays) {
  EXPECT_EQ(EnumWord(v1::IO_MODEL_IO_URING), "io_uring");
  EXPECT_EQ(EnumWord(v1::CLOSE_REASON_MAX_CONNECTION_AGE), "max_connection_age");
  EXPECT_EQ(EnumWord(static_cast<v1::IoModel>(99)), "99");
  EXPECT_EQ(*ParseEnumWord<v1::TriggerMode>("Level", "mode"), v1::TRIGGER_MODE_LEVEL);
  EXPECT_EQ(*ParseEnumWord<v1::ConnectionState>("write", "--state"), v1::CONNECTION_STATE_WRITE);
  absl::StatusOr<v1::TriggerMode> bad = ParseEnumWord<v1::TriggerMode>("unspecified", "the trigger mode");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "the trigger mode must be one of level|edge, not 'unspecified'");
}

TEST(NamesTest, DurationsAndAges) {
  EXPECT_EQ(AgeText(absl::Milliseconds(999)), "0s");
  EXPECT_EQ(AgeText(-absl::Seconds(3)), "0s");
  EXPECT_EQ(AgeText(absl::Seconds(187)), "3m7s");
  EXPECT_EQ(AgeText(absl::Hours(2) + absl::Minutes(5) + absl::Seconds(9)), "2h5m");
  EXPECT_EQ(AgeText(absl::Hours(76)), "3d4h");
  EXPECT_EQ(DurationText(absl::ZeroDuration()), "0s");
  EXPECT_EQ(DurationText(absl::Nanoseconds(2'255'000'000)), "2.25s");
  EXPECT_EQ(FromProto(ToProto(absl::Milliseconds(1500))), absl::Milliseconds(1500));
}

TEST(OutputTest, ExitCodes) {
  EXPECT_EQ(ExitCode(0, 3), kExitOk);
  EXPECT_EQ(ExitCode(1, 3), kExitSomeFailed);
  EXPECT_EQ(ExitCode(3, 3), kExitAllFailed);
  EXPECT_EQ(FailureLine("a:1", kDown), "gatewayctl: a:1: UNAVAILABLE: failed to connect");
}

}  // namespace
}  // namespace gateway::ctl
