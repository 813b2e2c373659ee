#include "bench/result.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bench {
namespace {

double Us(uint64_t ns) { return static_cast<double>(ns) / 1e3; }

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (static_cast<unsigned char>(ch) < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", ch);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

// Latency with a unit that keeps 3-4 significant digits.
std::string Pretty(uint64_t ns) {
  if (ns < 10'000) return absl::StrFormat("%.2f us", Us(ns));
  if (ns < 10'000'000) return absl::StrFormat("%.0f us", Us(ns));
  return absl::StrFormat("%.1f ms", static_cast<double>(ns) / 1e6);
}

}  // namespace

const char* ModeName(Mode mode) {
  switch (mode) {
    case Mode::kClosedLoop: return "closed";
    case Mode::kOpenLoop: return "open";
    case Mode::kIdle: return "idle";
  }
  return "?";
}

uint64_t RunResult::total_errors() const {
  uint64_t total = 0;
  for (uint64_t e : errors) total += e;
  return total;
}

bool RunResult::ok() const {
  if (reconnect && (failed != 0 || lost != 0)) return false;
  if (total_errors() != 0 || established != conns) return false;
  return mode == Mode::kIdle || requests > 0;
}

std::string FormatSummary(const RunResult& r) {
  std::string s = absl::StrFormat("gateway-bench %s:%d  %d conns, pipeline %d, %d B payload, %d thread(s), ", r.host,
                                  r.port, r.conns, r.pipeline, r.size, r.threads);
  if (r.mode == Mode::kOpenLoop) absl::StrAppendFormat(&s, "open loop at %.0f req/s", r.rate);
  if (r.mode == Mode::kClosedLoop) s += "closed loop";
  if (r.mode == Mode::kIdle) s += "idle";
  absl::StrAppendFormat(&s, "\n  connect    %d/%d established in %.2f s\n", r.established, r.conns, r.connect_s);
  if (r.mode != Mode::kIdle) {
    absl::StrAppendFormat(&s, "  requests   %d in %.2f s: %.0f req/s, %.1f MB/s\n", r.requests, r.window_s, r.rps(),
                          r.mbps());
    absl::StrAppendFormat(&s, "  latency    p50 %s  p90 %s  p99 %s  p99.9 %s  max %s%s\n",
                          Pretty(r.latency.Percentile(0.5)), Pretty(r.latency.Percentile(0.9)),
                          Pretty(r.latency.Percentile(0.99)), Pretty(r.latency.Percentile(0.999)),
                          Pretty(r.latency.max()), r.mode == Mode::kOpenLoop ? " (from intended send times)" : "");
    if (r.unfinished) absl::StrAppendFormat(&s, "  unfinished %d requests due in the window\n", r.unfinished);
  }
  s += "  errors     ";
  if (r.total_errors() == 0) s += "none";
  for (int k = 0; k < kNumErrorKinds; ++k) {
    if (r.errors[k]) absl::StrAppendFormat(&s, "%s %d  ", ErrorKindName(k), r.errors[k]);
  }
  s += "\n";
  if (r.accept_error_frames) absl::StrAppendFormat(&s, "  error frames %d (00000, accepted)\n", r.error_frames);
  if (r.reconnect) {
    absl::StrAppendFormat(&s,
                          "  reconnect  %d reconnects (%d EOF, %d resets), %d refused connects, %d requests resent\n"
                          "  requests   %d failed, %d lost (unanswered at the end)\n",
                          r.reconnects, r.eofs, r.resets, r.refused, r.resent, r.failed, r.lost);
  }
  const double window = r.mode == Mode::kIdle ? 0 : r.window_s;
  if (window > 0) {
    absl::StrAppendFormat(&s, "  client     %.2f s CPU (%.0f%% of a core)\n", r.client_cpu_s,
                          100 * r.client_cpu_s / window);
  }
  if (r.server_pid > 0 && r.server_cpu_s >= 0 && window > 0) {
    absl::StrAppendFormat(&s, "  server     pid %d: %.2f s CPU (%.0f%% of a core)", r.server_pid, r.server_cpu_s,
                          100 * r.server_cpu_s / window);
    if (r.requests) absl::StrAppendFormat(&s, ", %.2f us CPU per request", 1e6 * r.server_cpu_s / r.requests);
    s += "\n";
  }
  if (r.backend_pid > 0 && r.backend_cpu_s >= 0 && window > 0) {
    absl::StrAppendFormat(&s, "  backend    pid %d: %.2f s CPU (%.0f%% of a core)", r.backend_pid, r.backend_cpu_s,
                          100 * r.backend_cpu_s / window);
    if (r.requests) absl::StrAppendFormat(&s, ", %.2f us CPU per request", 1e6 * r.backend_cpu_s / r.requests);
    s += "\n";
  }
  if (r.mode == Mode::kIdle && r.rss_before >= 0 && r.rss_after >= 0) {
    absl::StrAppendFormat(&s, "  server     pid %d: RSS %.1f MiB -> %.1f MiB, %.0f bytes per connection\n",
                          r.server_pid, r.rss_before / 1048576.0, r.rss_after / 1048576.0,
                          r.established ? static_cast<double>(r.rss_after - r.rss_before) / r.established : 0.0);
  }
  absl::StrAppend(&s, r.ok() ? "  result     OK\n" : "  result     FAILED\n");
  return s;
}

std::string FormatJson(const RunResult& r) {
  std::string j = absl::StrFormat(
      "{\"bench\":\"gateway-bench\",\"label\":%s,\"mode\":\"%s\",\"host\":%s,\"port\":%d,\"conns\":%d,"
      "\"pipeline\":%d,\"size\":%d,\"threads\":%d,\"rate\":%.0f,\"warmup_s\":%.3f,\"established\":%d,"
      "\"connect_s\":%.3f,\"window_s\":%.4f,\"requests\":%d,\"rps\":%.1f,\"mbps\":%.3f,\"unfinished\":%d,",
      JsonString(r.label), ModeName(r.mode), JsonString(r.host), r.port, r.conns, r.pipeline, r.size, r.threads, r.rate,
      r.warmup_s, r.established, r.connect_s, r.window_s, r.requests, r.rps(), r.mbps(), r.unfinished);
  const LatencyHistogram& h = r.latency;
  absl::StrAppendFormat(&j,
                        "\"latency_us\":{\"count\":%d,\"mean\":%.2f,\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,"
                        "\"p999\":%.2f,\"max\":%.2f},",
                        h.count(), h.mean() / 1e3, Us(h.Percentile(0.5)), Us(h.Percentile(0.9)), Us(h.Percentile(0.99)),
                        Us(h.Percentile(0.999)), Us(h.max()));
  absl::StrAppendFormat(&j, "\"errors\":{\"total\":%d", r.total_errors());
  for (int k = 0; k < kNumErrorKinds; ++k) absl::StrAppendFormat(&j, ",\"%s\":%d", ErrorKindName(k), r.errors[k]);
  j += "},";
  absl::StrAppendFormat(&j, "\"accept_error_frames\":%s,\"error_frames\":%d,", r.accept_error_frames ? "true" : "false",
                        r.error_frames);
  if (r.reconnect) {
    absl::StrAppendFormat(&j,
                          "\"reconnect\":{\"targets\":%s,\"reconnects\":%d,\"eofs\":%d,\"resets\":%d,\"refused\":%d,"
                          "\"resent\":%d,\"failed\":%d,\"lost\":%d},",
                          JsonString(r.targets), r.reconnects, r.eofs, r.resets, r.refused, r.resent, r.failed, r.lost);
  }
  const bool timed = r.mode != Mode::kIdle && r.window_s > 0;
  absl::StrAppendFormat(&j, "\"client_cpu_s\":%.3f,\"client_cpu_util\":%.3f,", r.client_cpu_s,
                        timed ? r.client_cpu_s / r.window_s : 0.0);
  if (r.server_pid > 0 && r.server_cpu_s >= 0 && timed) {
    absl::StrAppendFormat(&j, "\"server_pid\":%d,\"server_cpu_s\":%.3f,\"server_cpu_util\":%.3f,", r.server_pid,
                          r.server_cpu_s, r.server_cpu_s / r.window_s);
    if (r.requests) {
      absl::StrAppendFormat(&j, "\"server_cpu_us_per_req\":%.4f,", 1e6 * r.server_cpu_s / r.requests);
    } else {
      j += "\"server_cpu_us_per_req\":null,";
    }
  } else {
    absl::StrAppendFormat(&j,
                          "\"server_pid\":%d,\"server_cpu_s\":null,\"server_cpu_util\":null,"
                          "\"server_cpu_us_per_req\":null,",
                          r.server_pid);
  }
  if (r.backend_pid > 0) {
    if (r.backend_cpu_s >= 0 && timed) {
      absl::StrAppendFormat(&j, "\"backend_pid\":%d,\"backend_cpu_s\":%.3f,\"backend_cpu_util\":%.3f,", r.backend_pid,
                            r.backend_cpu_s, r.backend_cpu_s / r.window_s);
      if (r.requests) {
        absl::StrAppendFormat(&j, "\"backend_cpu_us_per_req\":%.4f,", 1e6 * r.backend_cpu_s / r.requests);
      } else {
        j += "\"backend_cpu_us_per_req\":null,";
      }
    } else {
      absl::StrAppendFormat(&j, "\"backend_pid\":%d,\"backend_cpu_s\":null,\"backend_cpu_us_per_req\":null,",
                            r.backend_pid);
    }
  }
  if (r.rss_before >= 0 && r.rss_after >= 0) {
    absl::StrAppendFormat(&j, "\"rss_before\":%d,\"rss_after\":%d,\"rss_per_conn\":%.1f,", r.rss_before, r.rss_after,
                          r.established ? static_cast<double>(r.rss_after - r.rss_before) / r.established : 0.0);
  }
  absl::StrAppendFormat(&j, "\"interrupted\":%s,\"ok\":%s}", r.interrupted ? "true" : "false",
                        r.ok() ? "true" : "false");
  return j;
}

}  // namespace bench
