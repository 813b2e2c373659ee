// gateway-soak: hours of hostile and careless clients compressed into
// minutes, against one gateway, every answer verified. Runs at once:
//   verified traffic  long-lived connections, pipelined frames of 1..99999
//                     bytes (mostly small), every answer checked byte for
//                     byte; a few at a time stop reading for seconds
//                     (backpressure)
//   churn             connect, one request, verify, close (half after a FIN)
//   LT/ET flips       SetTriggerMode every --flip_interval
//   RST storms        nothing, part of a frame, whole frames, a bad header or
//                     large pipelined frames, then SO_LINGER 0
//   slowloris         frames trickled a byte a second (the gateway's
//                     --frame_timeout must close them)
//   CloseConnection   the driver's own connections, found by local address,
//   storms            closed gracefully, forcibly, or with a wrong id
//   stalled watchers  WatchConnections streams never read, or read slowly
// and samples the gateway once a second (RSS, fds, queued bytes, active
// connections) into a CSV file. Either starts the gateway itself
// (--gateway_binary: loopback, kernel-chosen ports) or attaches to a running
// one (--port, --control, --metrics_url, --gateway_pid).
//
// Fails (exit status 1) on: a lost or corrupt answer anywhere; a graceful
// close that lost an answer or cut a frame; a wrong-id close that closed; a
// live connection the gateway closed; the gateway dying (or, when started
// here, not exiting 0 on SIGTERM); RSS or fds not flat (median of the last
// quarter of samples above the second quarter's median by more than
// --rss_slack_pct and --fd_slack); connections or fds left open after
// everything closed. Prints a summary and one JSON line starting with
// {"soak":. Exit status 2: the run could not start.
#include <arpa/inet.h>
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "bench/soak/abuse.h"
#include "bench/soak/control_load.h"
#include "bench/soak/gateway_process.h"
#include "bench/soak/report.h"
#include "bench/soak/sampler.h"
#include "bench/soak/traffic.h"

// Which gateway.
ABSL_FLAG(std::string, gateway_binary, "",
          "Start this gateway binary on loopback with kernel-chosen ports (and stop it at the end); "
          "empty = attach to a running gateway (--port, --control, --metrics_url, --gateway_pid)");
ABSL_FLAG(std::string, gateway_flags, "--reactors=2", "Extra gateway flags (space-separated) when starting it");
ABSL_FLAG(std::string, gateway_log, "", "Where the started gateway's output goes (default: discarded)");
ABSL_FLAG(absl::Duration, frame_timeout, absl::Seconds(5),
          "Started gateway: passed as --frame_timeout if the binary has that flag (slowloris connections "
          "must then be closed); 0 = not passed");
ABSL_FLAG(std::string, host, "127.0.0.1", "Attach: the gateway's data-plane IPv4 address");
ABSL_FLAG(int, port, 6789, "Attach: the gateway's data-plane port");
ABSL_FLAG(std::string, control, "127.0.0.1:50051", "Attach: the gateway's control plane, host:port");
ABSL_FLAG(std::string, metrics_url, "http://127.0.0.1:9464/metrics", "Attach: the gateway's metrics; empty = none");
ABSL_FLAG(int, gateway_pid, 0, "Attach: the gateway's pid, for RSS and fds from /proc (required)");
ABSL_FLAG(absl::Duration, expect_frame_timeout, absl::ZeroDuration(),
          "Attach: the gateway's --frame_timeout, if any (slowloris connections must be closed by then)");

// The run.
ABSL_FLAG(absl::Duration, duration, absl::Minutes(10), "How long the loads run");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the payload pattern and of every random choice");
ABSL_FLAG(std::string, csv, "", "Time series output (one row per second); empty = none");
ABSL_FLAG(std::string, summary_json, "", "Also write the JSON summary line to this file");
ABSL_FLAG(int, verified_conns, 32, "Verified-traffic connections");
ABSL_FLAG(int, max_pipeline, 16, "Verified traffic: most requests in flight per connection");
ABSL_FLAG(double, traffic_mbps, 0, "Verified traffic: request MB/s cap over all connections; 0 = none");
ABSL_FLAG(double, stall_fraction, 0.125,
          "Verified traffic: at most this fraction of the connections at a time stop reading for 0.5..8 s");
ABSL_FLAG(int, stall_inflight_mb, 8, "Verified traffic: MB a stalled connection may pipeline meanwhile");
ABSL_FLAG(double, churn_per_sec, 50, "Churn connections per second");
ABSL_FLAG(double, rst_per_sec, 50, "RST-storm connections per second");
ABSL_FLAG(int, slowloris_conns, 16, "Slowloris connections held at once");
ABSL_FLAG(int, slowloris_byte_ms, 1000, "Slowloris: milliseconds between bytes");
ABSL_FLAG(int, storm_conns, 8, "CloseConnection storm: connections per batch");
ABSL_FLAG(absl::Duration, storm_interval, absl::Milliseconds(500), "CloseConnection storm: pause between batches");
ABSL_FLAG(int, stalled_watchers, 4, "WatchConnections streams never read");
ABSL_FLAG(int, slow_watchers, 4, "WatchConnections streams read one event per --watcher_read_interval");
ABSL_FLAG(absl::Duration, watcher_read_interval, absl::Seconds(5), "Slow watchers: time between reads");
ABSL_FLAG(absl::Duration, flip_interval, absl::Seconds(1), "Time between trigger-mode flips");

// Verdict.
ABSL_FLAG(double, rss_slack_pct, 20, "Flat RSS: last-quarter median <= second-quarter median * (1 + this/100)");
ABSL_FLAG(int, fd_slack, 64, "Flat fds: last-quarter median <= second-quarter median + this");
ABSL_FLAG(double, queued_slack_mb, 16,
          "Flat queued bytes: last-quarter median <= second-quarter median * 1.5 + this many MB");
ABSL_FLAG(int, settle_fd_slack, 16, "After the loads stop: fds must get back to at most the baseline + this");
ABSL_FLAG(absl::Duration, settle_timeout, absl::Seconds(20),
          "After the loads stop: time allowed for the gateway to get back to no connections (and its fds)");

namespace {

std::atomic<bool> g_stop_signal{false};

void OnStopSignal(int) { g_stop_signal.store(true); }

using soak::Clock;
using soak::Get;

// Where the gateway is, and what to expect of it.
struct Endpoints {
  sockaddr_in data{};
  std::string control;
  std::string metrics_host;  // empty: no scrape
  int metrics_port = 0;
  std::string metrics_path = "/metrics";
  pid_t pid = 0;
  int frame_timeout_ms = 0;
};

bool ResolveIpv4(const std::string& host, int port, sockaddr_in* out) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return false;
  *out = *reinterpret_cast<sockaddr_in*>(found->ai_addr);
  freeaddrinfo(found);
  out->sin_port = htons(static_cast<uint16_t>(port));
  return true;
}

// "http://host:port/path" -> host, port, path.
bool ParseUrl(const std::string& url, std::string* host, int* port, std::string* path) {
  absl::string_view rest(url);
  if (!absl::ConsumePrefix(&rest, "http://")) return false;
  const size_t slash = rest.find('/');
  const absl::string_view authority = rest.substr(0, slash);
  *path = slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  const size_t colon = authority.rfind(':');
  if (colon == absl::string_view::npos) return false;
  *host = std::string(authority.substr(0, colon));
  return absl::SimpleAtoi(authority.substr(colon + 1), port);
}

// Starts --gateway_binary on loopback (kernel-chosen ports), with
// --frame_timeout if the binary has it. Must run before any thread exists.
absl::StatusOr<std::unique_ptr<soak::GatewayProcess>> StartGateway(Endpoints* ep, std::vector<std::string>* notes) {
  const std::string binary = absl::GetFlag(FLAGS_gateway_binary);
  std::vector<std::string> args = absl::StrSplit(absl::GetFlag(FLAGS_gateway_flags), ' ', absl::SkipEmpty());
  const std::string help = soak::GatewayHelp(binary);
  if (help.empty()) return absl::NotFoundError(absl::StrCat("cannot run ", binary, " --helpfull"));
  const absl::Duration frame_timeout = absl::GetFlag(FLAGS_frame_timeout);
  if (frame_timeout > absl::ZeroDuration() && absl::StrContains(help, "-frame_timeout")) {
    args.push_back(absl::StrCat("--frame_timeout=", absl::FormatDuration(frame_timeout)));
    ep->frame_timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(frame_timeout));
  } else if (frame_timeout > absl::ZeroDuration()) {
    notes->push_back("the gateway has no --frame_timeout: slowloris connections are not expected to be closed");
  }
  absl::StatusOr<std::unique_ptr<soak::GatewayProcess>> gateway =
      soak::GatewayProcess::Start(binary, args, absl::GetFlag(FLAGS_gateway_log), 20000);
  if (!gateway.ok()) return gateway.status();
  const soak::GatewayProcess& g = **gateway;
  ep->pid = g.pid();
  ResolveIpv4("127.0.0.1", g.data_port(), &ep->data);
  ep->control = absl::StrCat("127.0.0.1:", g.control_port());
  ep->metrics_host = "127.0.0.1";
  ep->metrics_port = g.metrics_port();
  std::fprintf(stderr, "soak: started %s %s (pid %d): data %d, control %d, metrics %d\n", binary.c_str(),
               absl::StrJoin(args, " ").c_str(), ep->pid, g.data_port(), g.control_port(), g.metrics_port());
  return gateway;
}

// Fills `ep` from the attach flags.
absl::Status Attach(Endpoints* ep) {
  ep->pid = absl::GetFlag(FLAGS_gateway_pid);
  if (ep->pid <= 0) return absl::InvalidArgumentError("attaching needs --gateway_pid (or use --gateway_binary)");
  if (!ResolveIpv4(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port), &ep->data)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resolve ", absl::GetFlag(FLAGS_host)));
  }
  ep->control = absl::GetFlag(FLAGS_control);
  const std::string url = absl::GetFlag(FLAGS_metrics_url);
  if (!url.empty() && !ParseUrl(url, &ep->metrics_host, &ep->metrics_port, &ep->metrics_path)) {
    return absl::InvalidArgumentError("--metrics_url must look like http://host:port/path");
  }
  ep->frame_timeout_ms = static_cast<int>(absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_expect_frame_timeout)));
  return absl::OkStatus();
}

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

// Every load of the run, configured from the flags. Driver-thread only.
struct Loads {
  Loads(const soak::SoakTarget& target, const Endpoints& ep, const std::shared_ptr<soak::ControlStub>& stub)
      : traffic(target, TrafficOptions()),
        churn(target, absl::GetFlag(FLAGS_churn_per_sec)),
        rst(target, absl::GetFlag(FLAGS_rst_per_sec)),
        slowloris(target, SlowlorisOptions(ep)),
        flipper(target, stub, Millis(absl::GetFlag(FLAGS_flip_interval))),
        storm(target, stub, StormOptions()),
        watchers(target, WatcherOptions(ep)) {}

  static soak::TrafficOptions TrafficOptions() {
    soak::TrafficOptions o;
    o.conns = std::max(1, absl::GetFlag(FLAGS_verified_conns));
    o.max_pipeline = std::max(1, absl::GetFlag(FLAGS_max_pipeline));
    o.mbps = absl::GetFlag(FLAGS_traffic_mbps);
    o.stall_fraction = absl::GetFlag(FLAGS_stall_fraction);
    o.stall_inflight_bytes = static_cast<uint64_t>(std::max(1, absl::GetFlag(FLAGS_stall_inflight_mb))) << 20;
    return o;
  }
  static soak::SlowlorisOptions SlowlorisOptions(const Endpoints& ep) {
    soak::SlowlorisOptions o;
    o.conns = absl::GetFlag(FLAGS_slowloris_conns);
    o.byte_interval_ms = std::max(1, absl::GetFlag(FLAGS_slowloris_byte_ms));
    o.frame_timeout_ms = ep.frame_timeout_ms;
    return o;
  }
  static soak::StormOptions StormOptions() {
    soak::StormOptions o;
    o.conns = absl::GetFlag(FLAGS_storm_conns);
    o.interval_ms = Millis(absl::GetFlag(FLAGS_storm_interval));
    return o;
  }
  static soak::WatcherOptions WatcherOptions(const Endpoints& ep) {
    soak::WatcherOptions o;
    o.control_target = ep.control;
    o.never_read = absl::GetFlag(FLAGS_stalled_watchers);
    o.slow_read = absl::GetFlag(FLAGS_slow_watchers);
    o.read_interval_ms = Millis(absl::GetFlag(FLAGS_watcher_read_interval));
    return o;
  }

  // The abusers start after and stop before the verified traffic.
  void Start() {
    traffic.Start();
    for (soak::Scenario* s : Abusers()) s->Start();
  }
  void Stop() {
    for (soak::Scenario* s : Abusers()) s->RequestStop();
    for (soak::Scenario* s : Abusers()) s->Join();
    traffic.RequestStop();
    traffic.Join();
  }
  std::vector<soak::Scenario*> Abusers() {
    std::vector<soak::Scenario*> all = {&churn, &rst, &flipper};
    if (absl::GetFlag(FLAGS_slowloris_conns) > 0) all.push_back(&slowloris);
    if (absl::GetFlag(FLAGS_storm_conns) > 0) all.push_back(&storm);
    if (absl::GetFlag(FLAGS_stalled_watchers) + absl::GetFlag(FLAGS_slow_watchers) > 0) all.push_back(&watchers);
    return all;
  }

  soak::VerifiedTraffic traffic;
  soak::Churn churn;
  soak::RstStorm rst;
  soak::Slowloris slowloris;
  soak::TriggerFlipper flipper;
  soak::CloseStorm storm;
  soak::StalledWatchers watchers;
};

// Waits out the run (or a stop signal, or the gateway's death), printing a
// progress line every 30 s.
void WaitForEnd(absl::Duration duration, const std::function<bool()>& gateway_alive, soak::Sampler& sampler,
                const soak::SoakCounters& c, soak::SoakReport* report) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point end = start + absl::ToChronoNanoseconds(duration);
  Clock::time_point next_progress = start + std::chrono::seconds(30);
  while (Clock::now() < end) {
    if (g_stop_signal.load()) {
      report->interrupted = true;
      break;
    }
    if (!gateway_alive()) {
      report->died = true;
      std::fprintf(stderr, "soak: THE GATEWAY DIED\n");
      break;
    }
    if (Clock::now() >= next_progress) {
      const std::vector<soak::Sample> s = sampler.samples();
      if (!s.empty()) {
        std::fprintf(stderr,
                     "soak: %4.0f s  answered %llu  lost %llu  corrupt %llu  RSS %.1f MiB  fds %lld  queued %.2f MiB  "
                     "active %lld\n",
                     s.back().t_s, static_cast<unsigned long long>(Get(c.frames_answered)),
                     static_cast<unsigned long long>(soak::TotalLost(c)),
                     static_cast<unsigned long long>(soak::TotalCorrupt(c)),
                     static_cast<double>(s.back().rss_bytes) / 1048576, static_cast<long long>(s.back().fds),
                     s.back().queued_bytes / 1048576, static_cast<long long>(s.back().active));
      }
      next_progress += std::chrono::seconds(30);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the run's clock; signals and death are polled
  }
  report->seconds = std::chrono::duration<double>(Clock::now() - start).count();
}

// With every load stopped: waits for the gateway to get back to no
// connections and about its baseline fds, then takes its final statistics.
void Settle(soak::Sampler& sampler, soak::ControlStub& stub, soak::SoakReport* report) {
  const Clock::time_point end = Clock::now() + absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_settle_timeout));
  const int64_t fd_limit = report->baseline.fds + absl::GetFlag(FLAGS_settle_fd_slack);
  do {
    report->settled = sampler.TakeSample();
    report->settled_ok = report->settled.active == 0 && report->settled.fds >= 0 && report->settled.fds <= fd_limit;
    if (report->settled_ok) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // polling the gateway's counts
  } while (Clock::now() < end);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  report->final_stats_ok = stub.GetStats(&context, soak::v1::GetStatsRequest(), &report->final_stats).ok();
}

void WriteFile(const std::string& path, const std::string& text) {
  if (path.empty()) return;
  FILE* f = std::fopen(path.c_str(), "we");
  if (f == nullptr) {
    std::fprintf(stderr, "soak: cannot write %s: %s\n", path.c_str(), strerror(errno));
    return;
  }
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Soak test of a gateway: mixed verified traffic, LT/ET flips, RST storms, slowloris, churn, "
      "CloseConnection storms and stalled watchers, with RSS/fd/queued-bytes sampling.\n"
      "Usage: gateway-soak --gateway_binary=build/gateway/gateway --duration=10m --csv=soak.csv\n"
      "   or: gateway-soak --port=6789 --control=127.0.0.1:50051 --gateway_pid=$(pidof gateway)");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction stop_action {};
  stop_action.sa_handler = OnStopSignal;
  sigaction(SIGINT, &stop_action, nullptr);
  sigaction(SIGTERM, &stop_action, nullptr);
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }

  // 1. The gateway: started here (before any thread exists: it forks) or attached.
  soak::SoakReport report;
  Endpoints ep;
  std::unique_ptr<soak::GatewayProcess> gateway;
  if (!absl::GetFlag(FLAGS_gateway_binary).empty()) {
    absl::StatusOr<std::unique_ptr<soak::GatewayProcess>> started = StartGateway(&ep, &report.notes);
    if (!started.ok()) {
      std::fprintf(stderr, "soak: %s\n", std::string(started.status().message()).c_str());
      return 2;
    }
    gateway = *std::move(started);
  } else if (absl::Status attached = Attach(&ep); !attached.ok()) {
    std::fprintf(stderr, "soak: %s\n", std::string(attached.message()).c_str());
    return 2;
  }
  const std::function<bool()> gateway_alive = [&]() {
    if (gateway) return gateway->Running();
    return kill(ep.pid, 0) == 0 || errno == EPERM;
  };
  auto channel = grpc::CreateChannel(ep.control, grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::fprintf(stderr, "soak: cannot reach the control plane at %s\n", ep.control.c_str());
    return 2;
  }
  auto stub = std::shared_ptr<soak::ControlStub>(soak::v1::GatewayControl::NewStub(channel));

  // 2. The loads, for --duration.
  report.seed = absl::GetFlag(FLAGS_seed);
  report.pid = ep.pid;
  report.frame_timeout_ms = ep.frame_timeout_ms;
  const soak::SoakPattern pattern(report.seed);
  soak::SoakCounters counters;
  soak::SoakTarget target;
  target.data = ep.data;
  target.pattern = &pattern;
  target.counters = &counters;
  target.seed = report.seed;
  soak::SamplerOptions sampler_options;
  sampler_options.pid = ep.pid;
  sampler_options.metrics_host = ep.metrics_host;
  sampler_options.metrics_port = ep.metrics_port;
  sampler_options.metrics_path = ep.metrics_path;
  sampler_options.csv_path = absl::GetFlag(FLAGS_csv);
  sampler_options.start = Clock::now();
  soak::Sampler sampler(target, stub, sampler_options);
  report.baseline = sampler.TakeSample();
  Loads loads(target, ep, stub);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  std::fprintf(stderr, "soak: running for %s (seed %llu)\n", absl::FormatDuration(duration).c_str(),
               static_cast<unsigned long long>(report.seed));
  sampler.Start();
  loads.Start();
  WaitForEnd(duration, gateway_alive, sampler, counters, &report);

  // 3. Wind down, settle, stop the gateway.
  std::fprintf(stderr, "soak: stopping the loads\n");
  loads.Stop();
  sampler.RequestStop();
  sampler.Join();
  report.died = report.died || !gateway_alive();
  if (!report.died) Settle(sampler, *stub, &report);
  if (gateway) {
    report.gateway_exit = gateway->Stop(30000);
    if (report.died) std::fprintf(stderr, "soak: the gateway's exit status: %d\n", report.gateway_exit);
  }

  // 4. Verdict and report.
  soak::Thresholds thresholds;
  thresholds.rss_slack = absl::GetFlag(FLAGS_rss_slack_pct) / 100.0;
  thresholds.fd_slack = absl::GetFlag(FLAGS_fd_slack);
  thresholds.queued_slack_bytes = absl::GetFlag(FLAGS_queued_slack_mb) * 1024 * 1024;
  thresholds.settle_fd_slack = absl::GetFlag(FLAGS_settle_fd_slack);
  soak::Judge(counters, sampler.samples(), thresholds, &report);
  soak::PrintSummary(counters, report, stdout);
  const std::string json = soak::SummaryJson(counters, report);
  std::printf("%s\n", json.c_str());
  std::fflush(stdout);
  WriteFile(absl::GetFlag(FLAGS_summary_json), json + "\n");
  return report.failures.empty() ? 0 : 1;
}
