// Reads upstream mode's books from ListBackends() and the reactors' unrouted
// error counters.
#include "tests/upstream/upstream_counters.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

void Add(const BackendInfo& info, UpstreamTotals* totals) {
  totals->requests += info.requests;
  totals->responses += info.responses;
  totals->backend_errors += ErrorResponses(info);
  totals->redispatched += info.redispatched;
}

}  // namespace

UpstreamTotals Totals(const Gateway& gw, const std::vector<BackendInfo>& removed) {
  UpstreamTotals totals;
  absl::StatusOr<std::vector<BackendInfo>> backends = gw.ListBackends();
  if (backends.ok()) {
    for (const BackendInfo& info : *backends) Add(info, &totals);
  }
  for (const BackendInfo& info : removed) Add(info, &totals);
  totals.unrouted_errors = SumStat(gw, [](const ReactorStats& s) {
    uint64_t sum = 0;
    for (const RelaxedCounter& c : s.upstream_errors) sum += c.Get();
    return sum;
  });
  return totals;
}

std::string DescribeBackends(const Gateway& gw) {
  absl::StatusOr<std::vector<BackendInfo>> backends = gw.ListBackends();
  if (!backends.ok()) return std::string(backends.status().message());
  std::vector<std::string> lines;
  for (const BackendInfo& b : *backends) {
    std::vector<std::string> errors;
    for (int e = 0; e < kNumUpstreamErrors; ++e) {
      if (b.errors[e] != 0)
        errors.push_back(absl::StrCat(UpstreamErrorName(static_cast<UpstreamError>(e)), "=", b.errors[e]));
    }
    lines.push_back(absl::StrCat(
        b.address, " ", BackendStateName(b.state), " conns=", b.connections, " inflight=", b.inflight,
        " pending=", b.pending, " requests=", b.requests, " responses=", b.responses, " errors{",
        absl::StrJoin(errors, ","), "} redispatched=", b.redispatched, " ejections=", b.ejections,
        " probes_ok=", b.probes_ok, " probes_failed=", b.probes_failed, " last_error=\"", b.last_error, "\""));
  }
  return absl::StrJoin(lines, "\n");
}

}  // namespace gateway::testing
