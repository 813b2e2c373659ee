#include "bench/soak/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace soak {
namespace {

double Mb(double bytes) { return bytes / (1024.0 * 1024.0); }

unsigned long long U(const Counter& c) { return static_cast<unsigned long long>(Get(c)); }

std::string Quoted(absl::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) out += ch;
  }
  return out + "\"";
}

// Builds one JSON object, key by key, in order.
class JsonObject {
 public:
  JsonObject& Raw(absl::string_view key, absl::string_view json) {
    absl::StrAppend(&body_, body_.empty() ? "" : ",", Quoted(key), ":", json);
    return *this;
  }
  JsonObject& Num(absl::string_view key, double v) {
    if (v == static_cast<double>(static_cast<int64_t>(v))) return Raw(key, absl::StrCat(static_cast<int64_t>(v)));
    return Raw(key, absl::StrFormat("%.3f", v));
  }
  JsonObject& Int(absl::string_view key, int64_t v) { return Raw(key, absl::StrCat(v)); }
  JsonObject& Count(absl::string_view key, const Counter& c) { return Raw(key, absl::StrCat(Get(c))); }
  JsonObject& Bool(absl::string_view key, bool v) { return Raw(key, v ? "true" : "false"); }
  JsonObject& Str(absl::string_view key, absl::string_view v) { return Raw(key, Quoted(v)); }
  JsonObject& Strings(absl::string_view key, const std::vector<std::string>& v) {
    std::vector<std::string> quoted;
    for (const std::string& s : v) quoted.push_back(Quoted(s));
    return Raw(key, absl::StrCat("[", absl::StrJoin(quoted, ","), "]"));
  }
  std::string Done() const { return absl::StrCat("{", body_, "}"); }

 private:
  std::string body_;
};

std::string FlatJson(const FlatCheck& f) {
  return JsonObject()
      .Bool("judged", f.judged)
      .Bool("flat", f.flat)
      .Num("q2_median", f.second_quarter)
      .Num("q4_median", f.last_quarter)
      .Num("limit", f.limit)
      .Done();
}

std::string ClosesJson(const SoakReport& r) {
  if (!r.final_stats_ok) return "null";
  const v1::Counters& t = r.final_stats.totals();
  const v1::CloseCounts& cc = t.closed();
  return JsonObject()
      .Int("accepted", static_cast<int64_t>(t.accepted()))
      .Int("rejected", static_cast<int64_t>(t.rejected()))
      .Int("peer_closed", static_cast<int64_t>(cc.peer_closed()))
      .Int("protocol_error", static_cast<int64_t>(cc.protocol_error()))
      .Int("idle_timeout", static_cast<int64_t>(cc.idle_timeout()))
      .Int("control_plane", static_cast<int64_t>(cc.control_plane()))
      .Int("reset", static_cast<int64_t>(cc.reset()))
      .Int("max_connections", static_cast<int64_t>(cc.max_connections()))
      .Int("shutdown", static_cast<int64_t>(cc.shutdown()))
      .Int("error", static_cast<int64_t>(cc.error()))
      .Int("frame_timeout", static_cast<int64_t>(cc.frame_timeout()))
      .Done();
}

uint64_t SlowCloseMin(const SoakCounters& c) {
  return Get(c.slow_close_min_ms) == UINT64_MAX ? 0 : Get(c.slow_close_min_ms);
}

}  // namespace

uint64_t TotalLost(const SoakCounters& c) { return Get(c.lost) + Get(c.churn_lost) + Get(c.rst_unanswered); }

uint64_t TotalCorrupt(const SoakCounters& c) {
  return Get(c.corrupt) + Get(c.churn_corrupt) + Get(c.rst_corrupt) + Get(c.slow_corrupt) + Get(c.storm_corrupt);
}

void Judge(const SoakCounters& c, const std::vector<Sample>& samples, const Thresholds& t, SoakReport* r) {
  std::vector<double> rss, fds, queued;
  for (const Sample& s : samples) {
    if (s.rss_bytes >= 0) rss.push_back(static_cast<double>(s.rss_bytes));
    if (s.fds >= 0) fds.push_back(static_cast<double>(s.fds));
    if (s.scraped) queued.push_back(s.queued_bytes);
    r->queued_metric = r->queued_metric || s.queued_metric;
  }
  r->first = samples.empty() ? r->baseline : samples.front();
  r->last = samples.empty() ? r->baseline : samples.back();
  r->queued_max = queued.empty() ? 0 : *std::max_element(queued.begin(), queued.end());
  r->rss = CheckFlat(rss, t.rss_slack, 0);
  r->fds = CheckFlat(fds, 0, t.fd_slack);
  r->queued = CheckFlat(queued, 0.5, t.queued_slack_bytes);
  if (!r->queued_metric) r->notes.push_back("the gateway exports no gateway_queued_bytes: queued bytes recorded as 0");
  if (!r->rss.judged) r->notes.push_back("fewer than 8 samples: flatness not judged");
  if (r->interrupted) r->notes.push_back(absl::StrFormat("interrupted after %.0f s", r->seconds));

  std::vector<std::string>& f = r->failures;
  const auto require = [&f](bool ok, const std::string& what) {
    if (!ok) f.push_back(what);
  };
  const auto none = [&require](const Counter& counter, absl::string_view what) {
    require(Get(counter) == 0, absl::StrCat(Get(counter), " ", what));
  };
  require(!r->died, "the gateway died");
  require(TotalLost(c) == 0, absl::StrCat(TotalLost(c), " lost answer(s)"));
  require(TotalCorrupt(c) == 0, absl::StrCat(TotalCorrupt(c), " corrupt answer(s)"));
  none(c.verified_conns_broken, "verified connection(s) closed or reset by the gateway");
  none(c.churn_bad_end, "churn connection(s) without a clean EOF after FIN and answer");
  none(c.graceful_bad, "graceful CloseConnection(s) that lost an answer, cut a frame or reset");
  none(c.wrong_id_hit, "CloseConnection{fd, wrong id} call(s) that closed the connection");
  none(c.storm_not_listed, "answered connection(s) missing from ListConnections");
  none(c.storm_unexpected, "storm connection(s) that ended early, never ended or stopped answering");
  none(c.slow_overdue, "slowloris connection(s) open 10 s past the frame timeout");
  none(c.flips_failed, "failed trigger-mode flip(s)");
  require(Get(c.verified_connect_errors) + Get(c.churn_connect_errors) + Get(c.rst_connect_errors) +
                  Get(c.storm_connect_errors) ==
              0,
          "connect() failures");
  require(r->rss.flat,
          absl::StrFormat("RSS not flat (%.1f MiB > %.1f MiB)", Mb(r->rss.last_quarter), Mb(r->rss.limit)));
  require(r->fds.flat, absl::StrFormat("fds not flat (%.0f > %.0f)", r->fds.last_quarter, r->fds.limit));
  require(!r->queued_metric || r->queued.flat, absl::StrFormat("queued bytes not flat (%.1f MiB > %.1f MiB)",
                                                               Mb(r->queued.last_quarter), Mb(r->queued.limit)));
  if (!r->died) {
    require(r->settled_ok, absl::StrFormat("after everything closed: %d connection(s) open, %d fds (baseline %d)",
                                           r->settled.active, r->settled.fds, r->baseline.fds));
  }
  if (r->gateway_exit != -1 && !r->died) {
    require(r->gateway_exit == 0, absl::StrCat("gateway exit status on SIGTERM: ", r->gateway_exit));
  }
}

void PrintSummary(const SoakCounters& c, const SoakReport& r, FILE* out) {
  std::fprintf(out, "soak: %.0f s against pid %d, seed %llu\n", r.seconds, r.pid,
               static_cast<unsigned long long>(r.seed));
  std::fprintf(out,
               "  verified  %llu frames answered of %llu sent (%.1f MiB), lost %llu, corrupt %llu, broken conns %llu, "
               "%llu stalls\n",
               U(c.frames_answered), U(c.frames_sent), Mb(static_cast<double>(Get(c.bytes_answered))),
               static_cast<unsigned long long>(TotalLost(c)), static_cast<unsigned long long>(TotalCorrupt(c)),
               U(c.verified_conns_broken), U(c.verified_stalls));
  std::fprintf(out, "  churn     %llu ok, %llu lost, %llu corrupt, %llu bad ends\n", U(c.churn_ok), U(c.churn_lost),
               U(c.churn_corrupt), U(c.churn_bad_end));
  std::fprintf(out, "  rst       %llu connections reset\n", U(c.rst_conns));
  std::fprintf(out,
               "  slowloris %llu opened, %llu closed by the gateway (%llu..%llu ms after the first byte), "
               "%llu completed, %llu overdue\n",
               U(c.slow_opened), U(c.slow_closed_by_gateway), static_cast<unsigned long long>(SlowCloseMin(c)),
               U(c.slow_close_max_ms), U(c.slow_completed), U(c.slow_overdue));
  std::fprintf(out, "  flips     %llu ok, %llu failed\n", U(c.flips_ok), U(c.flips_failed));
  std::fprintf(out,
               "  storm     %llu conns: close OK %llu, NOT_FOUND %llu, other %llu; graceful checked %llu (bad %llu), "
               "forced %llu, wrong id NOT_FOUND %llu (hit %llu), not listed %llu, unexpected %llu\n",
               U(c.storm_conns), U(c.close_ok), U(c.close_not_found), U(c.close_other_error), U(c.graceful_checked),
               U(c.graceful_bad), U(c.force_closed), U(c.wrong_id_not_found), U(c.wrong_id_hit), U(c.storm_not_listed),
               U(c.storm_unexpected));
  std::fprintf(out,
               "  watchers  %llu opened: %llu cancelled by us, %llu RESOURCE_EXHAUSTED, %llu other; %llu events "
               "read, most dropped %llu\n",
               U(c.watchers_opened), U(c.watchers_cancelled), U(c.watchers_exhausted), U(c.watchers_other),
               U(c.watcher_events_read), U(c.watcher_dropped_max));
  std::fprintf(out,
               "  slowest   SetTriggerMode %llu ms, ListConnections %llu ms, CloseConnection %llu ms, GetStats %llu "
               "ms, GET /metrics %llu ms\n",
               U(c.flip_max_ms), U(c.list_max_ms), U(c.close_max_ms), U(c.stats_max_ms), U(c.scrape_max_ms));
  std::fprintf(out,
               "  gateway   RSS %.1f -> %.1f MiB (median Q2 %.1f, Q4 %.1f), fds %lld -> %lld (Q2 %.0f, Q4 %.0f), "
               "queued %.2f -> %.2f MiB (max %.2f)\n",
               Mb(static_cast<double>(r.first.rss_bytes)), Mb(static_cast<double>(r.last.rss_bytes)),
               Mb(r.rss.second_quarter), Mb(r.rss.last_quarter), static_cast<long long>(r.first.fds),
               static_cast<long long>(r.last.fds), r.fds.second_quarter, r.fds.last_quarter, Mb(r.first.queued_bytes),
               Mb(r.last.queued_bytes), Mb(r.queued_max));
  std::fprintf(out, "  settled   active %lld, fds %lld (baseline %lld), RSS %.1f MiB; exit status %d\n",
               static_cast<long long>(r.settled.active), static_cast<long long>(r.settled.fds),
               static_cast<long long>(r.baseline.fds), Mb(static_cast<double>(r.settled.rss_bytes)), r.gateway_exit);
  for (const std::string& n : r.notes) std::fprintf(out, "  note: %s\n", n.c_str());
  for (const std::string& f : r.failures) std::fprintf(out, "  FAIL: %s\n", f.c_str());
  std::fprintf(out, "soak: %s\n", r.failures.empty() ? "PASS" : "FAIL");
}

std::string SummaryJson(const SoakCounters& c, const SoakReport& r) {
  JsonObject j;
  j.Str("soak", "gateway-soak").Bool("ok", r.failures.empty()).Num("seconds", r.seconds);
  j.Int("seed", static_cast<int64_t>(r.seed)).Int("frame_timeout_ms", r.frame_timeout_ms);
  j.Count("frames_sent", c.frames_sent).Count("frames_answered", c.frames_answered);
  j.Count("bytes_answered", c.bytes_answered);
  j.Int("lost", static_cast<int64_t>(TotalLost(c))).Int("corrupt", static_cast<int64_t>(TotalCorrupt(c)));
  j.Count("verified_conns_broken", c.verified_conns_broken).Count("verified_stalls", c.verified_stalls);
  j.Count("churn_ok", c.churn_ok).Count("churn_bad_end", c.churn_bad_end).Count("rst_conns", c.rst_conns);
  j.Count("slowloris_opened", c.slow_opened).Count("slowloris_closed_by_gateway", c.slow_closed_by_gateway);
  j.Raw("slowloris_close_ms", absl::StrCat("[", SlowCloseMin(c), ",", Get(c.slow_close_max_ms), "]"));
  j.Count("slowloris_completed", c.slow_completed).Count("slowloris_overdue", c.slow_overdue);
  j.Count("flips_ok", c.flips_ok).Count("flips_failed", c.flips_failed);
  j.Count("storm_conns", c.storm_conns).Count("close_ok", c.close_ok).Count("close_not_found", c.close_not_found);
  j.Count("close_other_error", c.close_other_error).Count("graceful_checked", c.graceful_checked);
  j.Count("graceful_bad", c.graceful_bad).Count("force_closed", c.force_closed);
  j.Count("wrong_id_not_found", c.wrong_id_not_found).Count("wrong_id_hit", c.wrong_id_hit);
  j.Count("storm_not_listed", c.storm_not_listed).Count("storm_unexpected", c.storm_unexpected);
  j.Count("watchers_opened", c.watchers_opened).Count("watchers_exhausted", c.watchers_exhausted);
  j.Count("watchers_cancelled", c.watchers_cancelled).Count("watchers_other", c.watchers_other);
  j.Count("watcher_events_read", c.watcher_events_read).Count("watcher_dropped_max", c.watcher_dropped_max);
  j.Count("samples", c.samples).Count("scrape_failures", c.scrape_failures);
  j.Count("stats_failures", c.stats_failures);
  j.Raw("max_ms", JsonObject()
                      .Count("set_trigger_mode", c.flip_max_ms)
                      .Count("list_connections", c.list_max_ms)
                      .Count("close_connection", c.close_max_ms)
                      .Count("get_stats", c.stats_max_ms)
                      .Count("metrics", c.scrape_max_ms)
                      .Done());
  j.Bool("queued_metric", r.queued_metric);
  j.Int("rss_first", r.first.rss_bytes).Int("rss_last", r.last.rss_bytes);
  j.Int("fds_first", r.first.fds).Int("fds_last", r.last.fds);
  j.Num("queued_first", r.first.queued_bytes).Num("queued_last", r.last.queued_bytes).Num("queued_max", r.queued_max);
  j.Raw("rss_flat", FlatJson(r.rss)).Raw("fds_flat", FlatJson(r.fds)).Raw("queued_flat", FlatJson(r.queued));
  j.Int("baseline_fds", r.baseline.fds).Int("settled_active", r.settled.active).Int("settled_fds", r.settled.fds);
  j.Int("settled_rss", r.settled.rss_bytes).Int("gateway_exit", r.gateway_exit);
  j.Raw("gateway_closes", ClosesJson(r));
  j.Strings("failures", r.failures).Strings("notes", r.notes);
  return j.Done();
}

}  // namespace soak
