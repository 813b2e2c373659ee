// The built gatewayctl binary against three in-process gateways holding
// different numbers of connections: the merged listing equals the sum of the
// gateways' counts (and their GetStats), one stopped control plane is
// reported while the others' answers still print (exit 2), all stopped is
// exit 1; fleet-wide mode switches, close on one target, drain, watch, TLS,
// and usage errors.
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/ctl/fleet_fixture.h"
#include "tests/support/test_pki.h"

namespace gateway::ctl::testing {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

const std::vector<int> kCounts = {2, 3, 4};

const google::protobuf::RepeatedPtrField<Value>& Results(const Struct& doc) {
  return doc.fields().at("results").list_value().values();
}
const Struct& Field(const Value& v, const std::string& name) {
  return v.struct_value().fields().at(name).struct_value();
}
std::string Text(const Struct& s, const std::string& name) { return s.fields().at(name).string_value(); }

// The table's rows (header dropped), each split on runs of spaces.
std::vector<std::vector<std::string>> Rows(const std::string& table) {
  std::vector<std::vector<std::string>> rows;
  for (absl::string_view line : absl::StrSplit(table, '\n', absl::SkipEmpty())) {
    rows.push_back(absl::StrSplit(line, ' ', absl::SkipEmpty()));
  }
  if (!rows.empty()) rows.erase(rows.begin());
  return rows;
}

class GatewayctlTest : public FleetFixture {};

TEST_F(GatewayctlTest, MergedListingEqualsTheSumOfEveryGatewaysConnections) {
  ASSERT_NO_FATAL_FAILURE(StartFleet(kCounts));
  const CtlRun list = Ctl({TargetsFlag(), "list", "--output=json"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.err, "");
  const Struct doc = ParseJson(list.out);
  EXPECT_EQ(doc.fields().at("targets").number_value(), 3);
  EXPECT_EQ(doc.fields().at("failed").number_value(), 0);
  ASSERT_EQ(Results(doc).size(), 3);
  int listed = 0;
  for (size_t i = 0; i < members_.size(); ++i) {
    const Value& result = Results(doc)[i];
    EXPECT_EQ(Text(result.struct_value(), "target"), members_[i].target());
    const Struct& response = Field(result, "response");
    const auto& connections = response.fields().at("connections").list_value().values();
    EXPECT_EQ(connections.size(), kCounts[i]) << members_[i].target();
    EXPECT_EQ(Text(response, "totalSize"), absl::StrCat(kCounts[i]));
    std::set<std::string> peers, expected;
    for (const Value& c : connections) peers.insert(Text(c.struct_value(), "peer"));
    for (const TestClient& client : members_[i].clients) expected.insert(client.peer_name());
    EXPECT_EQ(peers, expected) << members_[i].target();
    listed += connections.size();
  }
  EXPECT_EQ(listed, 2 + 3 + 4);

  const CtlRun stats = Ctl({TargetsFlag(), "stats", "--output=json"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  const Struct stats_doc = ParseJson(stats.out);
  int64_t active = 0;
  for (size_t i = 0; i < members_.size(); ++i) {
    const std::string count = Text(Field(Results(stats_doc)[i], "response"), "activeConnections");
    EXPECT_EQ(count, absl::StrCat(kCounts[i])) << members_[i].target();
    active += std::stoll(count);
  }
  EXPECT_EQ(active, listed);

  // The tables say the same: a row per connection, and the stats' TOTAL.
  const CtlRun table = Ctl({TargetsFlag(), "list"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(absl::StartsWith(table.out, "TARGET           FD  ID  PEER")) << table.out;
  EXPECT_EQ(Rows(table.out).size(), 9u) << table.out;
  const CtlRun stats_table = Ctl({TargetsFlag(), "stats"});
  ASSERT_EQ(stats_table.exit_code, 0) << stats_table.err;
  const std::vector<std::vector<std::string>> rows = Rows(stats_table.out);
  ASSERT_EQ(rows.size(), 4u) << stats_table.out;
  EXPECT_EQ(rows[3][0], "TOTAL");
  EXPECT_EQ(rows[3][1], "9") << stats_table.out;  // INSTANCE is blank in the TOTAL row
}

TEST_F(GatewayctlTest, AStoppedGatewayIsReportedAndTheOthersStillListed) {
  ASSERT_NO_FATAL_FAILURE(StartFleet(kCounts));
  const std::string stopped = members_[1].target();
  StopControl(1);

  const CtlRun list = Ctl({TargetsFlag(), "list", "--output=json"});
  EXPECT_EQ(list.exit_code, 2);
  ASSERT_EQ(Lines(list.err).size(), 1u) << list.err;
  EXPECT_TRUE(absl::StartsWith(list.err, absl::StrCat("gatewayctl: ", stopped, ": UNAVAILABLE: "))) << list.err;
  const Struct doc = ParseJson(list.out);
  EXPECT_EQ(doc.fields().at("failed").number_value(), 1);
  ASSERT_EQ(Results(doc).size(), 3);
  EXPECT_EQ(Text(Field(Results(doc)[1], "error"), "code"), "UNAVAILABLE");
  EXPECT_FALSE(Results(doc)[1].struct_value().fields().contains("response"));
  for (size_t i : {0, 2}) {
    EXPECT_EQ(Field(Results(doc)[i], "response").fields().at("connections").list_value().values_size(), kCounts[i]);
  }

  const CtlRun stats = Ctl({TargetsFlag(), "stats"});
  EXPECT_EQ(stats.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(stats.out, absl::StrCat(stopped, "  error: UNAVAILABLE: "))) << stats.out;
  const std::vector<std::vector<std::string>> rows = Rows(stats.out);
  ASSERT_EQ(rows.size(), 4u) << stats.out;
  EXPECT_EQ(rows[3][1], absl::StrCat(kCounts[0] + kCounts[2])) << stats.out;

  StopControl(0);
  StopControl(2);
  const CtlRun none = Ctl({TargetsFlag(), "list"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_EQ(Lines(none.err).size(), 3u) << none.err;
}

TEST_F(GatewayctlTest, CallsEveryAddressADnsNameHas) {
  ASSERT_NO_FATAL_FAILURE(StartFleet({2}));
  // localhost is 127.0.0.1 and, on some hosts, ::1 too (where nothing
  // listens here: that target fails and says so).
  const CtlRun run = Ctl({absl::StrCat("--dns=localhost:", members_[0].control_port), "list", "--output=json"});
  const Struct doc = ParseJson(run.out);
  bool v4 = false;
  for (const Value& result : Results(doc)) {
    const std::string target = Text(result.struct_value(), "target");
    if (target == members_[0].target()) {
      v4 = true;
      EXPECT_EQ(Field(result, "response").fields().at("connections").list_value().values_size(), 2);
    } else {
      EXPECT_EQ(target, absl::StrCat("[::1]:", members_[0].control_port));
      EXPECT_EQ(Text(Field(result, "error"), "code"), "UNAVAILABLE");
    }
  }
  EXPECT_TRUE(v4) << run.out;
  EXPECT_EQ(run.exit_code, Results(doc).size() == 1 ? 0 : 2) << run.err;
}

TEST_F(GatewayctlTest, SwitchesTheTriggerModeOnEveryGateway) {
  ASSERT_NO_FATAL_FAILURE(StartFleet({1, 1, 1}));
  const CtlRun set = Ctl({TargetsFlag(), "set-trigger-mode", "level"});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  for (const std::vector<std::string>& row : Rows(set.out)) EXPECT_EQ(row[1], "level") << set.out;
  const CtlRun get = Ctl({TargetsFlag(), "get-trigger-mode", "--output=json"});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  const Struct doc = ParseJson(get.out);
  for (const Value& result : Results(doc)) {
    EXPECT_EQ(Text(Field(result, "response"), "mode"), "TRIGGER_MODE_LEVEL");
    EXPECT_EQ(Text(Field(result, "response"), "switches"), "1");
  }
  const CtlRun bad = Ctl({TargetsFlag(), "set-trigger-mode", "sideways"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(bad.err, "gatewayctl: the trigger mode must be one of level|edge, not 'sideways'\n");
  EXPECT_EQ(bad.out, "");
}

TEST_F(GatewayctlTest, CloseNeedsOneTargetAndClosesThere) {
  ASSERT_NO_FATAL_FAILURE(StartFleet(kCounts));
  const CtlRun many = Ctl({TargetsFlag(), "close", "--fd=5"});
  EXPECT_EQ(many.exit_code, 1);
  EXPECT_EQ(Lines(many.err).size(), 1u) << many.err;
  EXPECT_TRUE(absl::StrContains(many.err, "close needs exactly one target")) << many.err;
  EXPECT_EQ(many.out, "");

  Member& m = members_[0];
  absl::StatusOr<ConnectionInfo> info = FindConnection(*m.gw, m.clients[0]);
  ASSERT_TRUE(info.ok()) << info.status();
  const std::string one = absl::StrCat("--targets=", m.target());
  const CtlRun wrong_id = Ctl({one, "close", absl::StrCat("--fd=", info->fd), absl::StrCat("--id=", info->id + 1000)});
  EXPECT_EQ(wrong_id.exit_code, 1);
  EXPECT_TRUE(absl::StartsWith(wrong_id.err, absl::StrCat("gatewayctl: ", m.target(), ": NOT_FOUND: ")))
      << wrong_id.err;
  const CtlRun close = Ctl({one, "close", absl::StrCat("--fd=", info->fd), absl::StrCat("--id=", info->id)});
  ASSERT_EQ(close.exit_code, 0) << close.err;
  EXPECT_EQ(Rows(close.out), (std::vector<std::vector<std::string>>{{m.target(), absl::StrCat(info->fd), "closed"}}));
  EXPECT_TRUE(m.clients[0].ExpectEof().ok());
}

TEST_F(GatewayctlTest, DrainsACountOnEveryGateway) {
  ASSERT_NO_FATAL_FAILURE(StartFleet(kCounts));
  const CtlRun drain = Ctl({TargetsFlag(), "drain", "--count=1", "--output=json"});
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  const Struct doc = ParseJson(drain.out);
  for (size_t i = 0; i < members_.size(); ++i) {
    const Struct& response = Field(Results(doc)[i], "response");
    EXPECT_EQ(response.fields().at("selected").number_value(), 1) << drain.out;
    EXPECT_EQ(response.fields().at("matching").number_value(), kCounts[i]) << drain.out;
  }
  // Oldest first: each gateway's first client gets the FIN; once it closes
  // too (the gateway lingers for that), one connection fewer on each.
  for (size_t i = 0; i < members_.size(); ++i) {
    Member& m = members_[i];
    EXPECT_TRUE(m.clients[0].ExpectEof().ok()) << m.target();
    m.clients[0].Close();
    EXPECT_TRUE(WaitUntil([&] { return m.gw->active_connections() == kCounts[i] - 1; })) << m.target();
    EXPECT_EQ(ClosedCount(*m.gw, CloseReason::kDrained), 1u) << m.target();
  }
  const CtlRun usage = Ctl({TargetsFlag(), "drain"});
  EXPECT_EQ(usage.exit_code, 1);
  EXPECT_EQ(usage.err, "gatewayctl: drain needs --fraction or --count\n");
}

TEST_F(GatewayctlTest, WatchMergesEveryGatewaysEventsAndReportsAFailedStream) {
  ASSERT_NO_FATAL_FAILURE(StartFleet({0, 0, 0}));
  const std::string stopped = members_[2].target();
  StopControl(2);
  TempDir dir;
  absl::StatusOr<std::unique_ptr<Subprocess>> watch =
      Subprocess::Start({GATEWAYCTL_BINARY, TargetsFlag(), "watch"}, dir.File("watch.log"));
  ASSERT_TRUE(watch.ok()) << watch.status();
  // Until the watchers are registered, new connections may go unseen: keep
  // opening one on each live gateway until both have shown up and the
  // stopped one has been reported (bounded).
  auto seen = [&] {
    const std::string log = (*watch)->Log();
    return absl::StrContains(log, absl::StrCat(members_[0].target(), " ")) &&
           absl::StrContains(log, absl::StrCat(members_[1].target(), " ")) &&
           absl::StrContains(log, absl::StrCat("gatewayctl: ", stopped, ": "));
  };
  for (int round = 0; round < 100 && !seen(); ++round) {
    ASSERT_NO_FATAL_FAILURE(AddClient(members_[0]));
    ASSERT_NO_FATAL_FAILURE(AddClient(members_[1]));
    absl::SleepFor(absl::Milliseconds(100));
  }
  const std::string log = (*watch)->Log();
  for (size_t i : {0, 1}) {
    EXPECT_TRUE(absl::StrContains(log, absl::StrCat(members_[i].target(), " "))) << log;
  }
  EXPECT_TRUE(absl::StrContains(log, " opened fd=")) << log;
  EXPECT_TRUE(absl::StrContains(log, absl::StrCat("gatewayctl: ", stopped, ": UNAVAILABLE: "))) << log;
  EXPECT_EQ((*watch)->Stop(), 2) << (*watch)->Log();  // SIGTERM ends it; one target failed
}

TEST_F(GatewayctlTest, WatchEndsAfterItsDuration) {
  ASSERT_NO_FATAL_FAILURE(StartFleet({0}));
  const CtlRun watch = Ctl({TargetsFlag(), "watch", "--duration=200ms"});
  EXPECT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_EQ(watch.err, "");
}

TEST_F(GatewayctlTest, ManagesBackendsOnEveryProxy) {
  // Two backends (plain reversing gateways), two proxies in front of the
  // first (probes off: the test drives the states), and one gateway not in
  // upstream mode.
  std::vector<std::unique_ptr<Gateway>> backends;
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<std::unique_ptr<Gateway>> backend = StartTestGateway(GatewayOptions());
    ASSERT_TRUE(backend.ok()) << backend.status();
    backends.push_back(*std::move(backend));
  }
  const std::string b1 = absl::StrCat("127.0.0.1:", backends[0]->port());
  const std::string b2 = absl::StrCat("127.0.0.1:", backends[1]->port());
  GatewayOptions proxy;
  proxy.upstream.backends.push_back(BackendSpec{b1, 1});
  proxy.upstream.probe_interval = absl::ZeroDuration();
  ASSERT_NO_FATAL_FAILURE(StartFleet({0, 0}, {}, proxy));
  const std::string proxies = TargetsFlag();

  // Each step: every proxy's row for the backend, as (ADDRESS, STATE, WEIGHT).
  auto rows = [&](const std::vector<std::string>& args, const std::string& address) {
    std::vector<std::string> argv = {proxies};
    argv.insert(argv.end(), args.begin(), args.end());
    const CtlRun run = Ctl(argv);
    EXPECT_EQ(run.exit_code, 0) << absl::StrJoin(args, " ") << ": " << run.err;
    std::vector<std::string> out;
    for (const std::vector<std::string>& row : Rows(run.out)) {
      if (row.size() > 3 && row[1] == address) out.push_back(absl::StrCat(row[0], " ", row[2], " ", row[3]));
    }
    return out;
  };
  auto both = [&](const std::string& state, int weight) {
    return std::vector<std::string>{absl::StrCat(members_[0].target(), " ", state, " ", weight),
                                    absl::StrCat(members_[1].target(), " ", state, " ", weight)};
  };
  EXPECT_EQ(rows({"backends"}, b1), both("healthy", 1));
  EXPECT_EQ(rows({"add-backend", b2, "--weight=3"}, b2), both("healthy", 3));
  EXPECT_EQ(rows({"set-backend-weight", b2, "5"}, b2), both("healthy", 5));
  EXPECT_EQ(rows({"drain-backend", b2}, b2), both("draining", 5));
  EXPECT_EQ(rows({"undrain-backend", b2}, b2), both("healthy", 5));
  EXPECT_EQ(rows({"backends"}, b2), both("healthy", 5));
  EXPECT_EQ(rows({"remove-backend", b2}, b2).size(), 2u);
  EXPECT_EQ(rows({"backends"}, b2).size(), 0u);

  // A gateway without --upstream answers FAILED_PRECONDITION; the proxies' rows still print.
  ASSERT_NO_FATAL_FAILURE(StartFleet({0}));
  const CtlRun mixed = Ctl({TargetsFlag(), "backends"});
  EXPECT_EQ(mixed.exit_code, 2);
  EXPECT_TRUE(
      absl::StartsWith(mixed.err, absl::StrCat("gatewayctl: ", members_[2].target(), ": FAILED_PRECONDITION: ")))
      << mixed.err;
  EXPECT_EQ(Rows(mixed.out).size(), 3u) << mixed.out;  // b1 on each proxy, and the error row
  for (const std::unique_ptr<Gateway>& backend : backends) backend->Shutdown(absl::Seconds(5));
}

TEST_F(GatewayctlTest, SpeaksMutualTls) {
  const Pki& pki = Pki::Get();
  ASSERT_TRUE(pki.ok()) << "openssl failed (is it installed?)";
  control::ControlServerOptions tls;
  tls.tls_cert_file = pki.path("server.pem");
  tls.tls_key_file = pki.path("server.key");
  tls.tls_client_ca_file = pki.path("ca.pem");
  ASSERT_NO_FATAL_FAILURE(StartFleet({1, 2}, tls));
  const std::string ca = absl::StrCat("--tls_ca=", pki.path("ca.pem"));
  const std::string cert = absl::StrCat("--tls_cert=", pki.path("client.pem"));
  const std::string key = absl::StrCat("--tls_key=", pki.path("client.key"));

  const CtlRun mtls = Ctl({TargetsFlag(), ca, cert, key, "stats"});
  ASSERT_EQ(mtls.exit_code, 0) << mtls.err;
  EXPECT_EQ(Rows(mtls.out).back()[1], "3") << mtls.out;
  // The certificate names localhost too: the override is checked against it.
  const CtlRun named = Ctl({TargetsFlag(), ca, cert, key, "--tls_server_name=localhost", "list"});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  const CtlRun wrong_name = Ctl({TargetsFlag(), ca, cert, key, "--tls_server_name=elsewhere", "list"});
  EXPECT_EQ(wrong_name.exit_code, 1) << wrong_name.err;
  EXPECT_EQ(Lines(wrong_name.err).size(), 2u) << wrong_name.err;  // one a target, no gRPC log lines
  const CtlRun no_client_cert = Ctl({TargetsFlag(), ca, "stats"});
  EXPECT_EQ(no_client_cert.exit_code, 1);
  EXPECT_EQ(Lines(no_client_cert.err).size(), 2u) << no_client_cert.err;
  const CtlRun plaintext = Ctl({TargetsFlag(), "stats"});
  EXPECT_EQ(plaintext.exit_code, 1);
  const CtlRun swapped = Ctl({TargetsFlag(), absl::StrCat("--tls_ca=", pki.path("client.key")), "stats"});
  EXPECT_EQ(swapped.exit_code, 1);
  EXPECT_EQ(swapped.err, absl::StrCat("gatewayctl: --tls_ca: ", pki.path("client.key"), " holds no PEM certificate\n"));
  const CtlRun half = Ctl({TargetsFlag(), ca, cert, "stats"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_EQ(half.err, "gatewayctl: --tls_cert and --tls_key go together\n");
}

TEST_F(GatewayctlTest, UsageErrorsAreOneLineAndExitOne) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{}, "gatewayctl: no subcommand (gatewayctl help lists them)\n"},
      {{"frobnicate"}, "gatewayctl: unknown subcommand 'frobnicate' (gatewayctl help lists them)\n"},
      {{"stats", "extra"}, "gatewayctl: usage: gatewayctl stats\n"},
      {{"--output=yaml", "stats"}, "gatewayctl: --output must be table or json, not 'yaml'\n"},
      {{"--targets=a:1", "--dns=b:2", "stats"}, "gatewayctl: give --targets or --dns, not both\n"},
      {{"--targets=a:1,", "stats"}, "gatewayctl: --targets 'a:1,' has an empty entry\n"},
      {{"--timeout=0s", "stats"}, "gatewayctl: --timeout must be > 0\n"},
      {{"--tls_server_name=x", "stats"}, "gatewayctl: --tls_server_name needs TLS (--tls_ca)\n"},
      {{"--tls_ca=/nonexistent.pem", "stats"}, "gatewayctl: --tls_ca: cannot read /nonexistent.pem\n"},
      {{"list", "--state=sleeping"},
       "gatewayctl: --state must be one of accept|read|process|write|closing, not 'sleeping'\n"},
      {{"drain", "--fraction=1.5"}, "gatewayctl: --fraction must be in (0, 1]\n"},
      {{"stats", "--fd=3"}, "gatewayctl: --fd does not apply to stats\n"},
      {{"list", "--duration=1s"}, "gatewayctl: --duration does not apply to list\n"},
  };
  for (const auto& [args, message] : cases) {
    const CtlRun run = Ctl(args);
    EXPECT_EQ(run.exit_code, 1) << absl::StrJoin(args, " ");
    EXPECT_EQ(run.err, message) << absl::StrJoin(args, " ");
    EXPECT_EQ(run.out, "") << absl::StrJoin(args, " ");
  }
  const CtlRun help = Ctl({"help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* command : {"stats", "list", "close", "drain", "watch", "set-io-model", "watch-backends"}) {
    EXPECT_TRUE(absl::StrContains(help.out, absl::StrCat("\n  ", command, " "))) << command;
  }
}

}  // namespace
}  // namespace gateway::ctl::testing
