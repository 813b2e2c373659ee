// gateway-bench: a load generator for the 5-byte length-header reverse
// protocol, what redis-benchmark and wrk are to theirs. Closed loop
// (--pipeline requests in flight per connection), open loop (--rate, latency
// from intended send times) or idle (--idle N: hold N proven connections).
// Every response is validated byte for byte; any mismatch, reset, early EOF or
// failed connection makes the exit status 1. Prints a human summary and one
// JSON line starting with {"bench": for scripts.
// --reconnect follows the client contract instead: an EOF or reset reopens the
// connection (round robin over --targets) and resends the unanswered
// requests; the exit status is 1 only if a request failed, was lost, or got a
// wrong or duplicated response.
#include <netdb.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/payload.h"
#include "bench/proc_stat.h"
#include "bench/result.h"
#include "bench/targets.h"
#include "bench/worker.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Server host (name, IPv4 or IPv6 address)");
ABSL_FLAG(int, port, 6789, "Server port");
ABSL_FLAG(int, conns, 1, "Connections, spread over the threads");
ABSL_FLAG(int, pipeline, 1, "Requests in flight per connection (1..512)");
ABSL_FLAG(int, size, 64, "Payload bytes per request (1..99999)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Measured window (idle mode: how long to hold)");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Traffic before the measured window, not counted");
ABSL_FLAG(int, threads, 1, "Threads, each with its own epoll loop over its share of the connections");
ABSL_FLAG(double, rate, 0,
          "Open loop: requests/s over all connections, latency measured from each request's intended send "
          "time (no coordinated omission); 0 = closed loop");
ABSL_FLAG(int, idle, 0,
          "Idle mode: open this many connections, prove each with one request, print a line when all are "
          "established, then hold them for --duration");
ABSL_FLAG(int, server_pid, 0,
          "Server process to charge: its CPU time over the measured window (and, idle mode, its RSS growth)");
ABSL_FLAG(int, backend_pid, 0,
          "With --server_pid naming a proxy: its backend process, charged separately over the same window");
ABSL_FLAG(bool, accept_error_frames, false,
          "Accept the empty frame 00000 (an upstream-mode gateway's error response) in place of a response: "
          "counted as an error frame, not a mismatch, and the connection goes on");
ABSL_FLAG(int, connect_batch, 256, "Connections being opened and proven at once, over all threads");
ABSL_FLAG(absl::Duration, connect_timeout, absl::Seconds(60), "Time allowed to open and prove all connections");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON line (e.g. the server's name)");
ABSL_FLAG(bool, reconnect, false,
          "Client contract: on EOF or reset reconnect and resend every unanswered request; refused connects "
          "retry with a short backoff; after the window wait up to --settle for outstanding responses");
ABSL_FLAG(std::string, targets, "",
          "With --reconnect: host:port,... picked round robin at each connect (as kube-proxy does); "
          "default --host:--port");
ABSL_FLAG(int, reconnect_attempts, 40, "With --reconnect: failed connects in a row before a connection gives up");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(5),
          "With --reconnect: time after the window for outstanding responses; still missing then = lost");

namespace {

using bench::Mode;

// SIGINT/SIGTERM end the run early (idle mode's hold, typically); the
// summary then covers the shortened window.
std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true, std::memory_order_relaxed); }

[[noreturn]] void Usage(absl::string_view message) {
  std::fprintf(stderr, "gateway-bench: %s\n", std::string(message).c_str());
  std::exit(2);
}

void RaiseFdLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int64_t FdLimit() {
  rlimit limit;
  return getrlimit(RLIMIT_NOFILE, &limit) == 0 ? static_cast<int64_t>(limit.rlim_cur) : 1024;
}

bench::WorkerOptions ResolveOrDie(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) Usage(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  bench::WorkerOptions options;
  std::memcpy(&options.address, found->ai_addr, found->ai_addrlen);
  options.address_len = found->ai_addrlen;
  freeaddrinfo(found);
  return options;
}

// Prints a live progress line when stdout is a terminal.
class Progress {
 public:
  explicit Progress(const std::vector<std::unique_ptr<bench::Worker>>& workers)
      : workers_(workers), enabled_(isatty(STDOUT_FILENO)) {}

  void Show(absl::string_view phase, int64_t now_ns) {
    if (!enabled_ || (last_ns_ != 0 && now_ns - last_ns_ < 250'000'000)) return;
    uint64_t completed = 0, errors = 0;
    int established = 0;
    for (const auto& w : workers_) {
      const bench::WorkerCounters& c = w->counters();
      completed += c.completed.load(std::memory_order_relaxed);
      established += c.established.load(std::memory_order_relaxed);
      for (const auto& e : c.errors) errors += e.load(std::memory_order_relaxed);
    }
    const double dt = last_ns_ ? static_cast<double>(now_ns - last_ns_) / 1e9 : 0;
    const double rps = dt > 0 ? static_cast<double>(completed - last_completed_) / dt : 0;
    std::printf("\r%-8s conns %6d  %10.0f req/s  errors %llu   ", std::string(phase).c_str(), established, rps,
                static_cast<unsigned long long>(errors));
    std::fflush(stdout);
    last_ns_ = now_ns;
    last_completed_ = completed;
    shown_ = true;
  }
  void Finish() {
    if (shown_) std::printf("\r%70s\r", "");
  }

 private:
  const std::vector<std::unique_ptr<bench::Worker>>& workers_;
  const bool enabled_;
  bool shown_ = false;
  int64_t last_ns_ = 0;
  uint64_t last_completed_ = 0;
};

// Sleeps until `deadline_ns` or a stop signal, refreshing the progress line
// every second.
void WaitUntil(int64_t deadline_ns, absl::string_view phase, Progress& progress) {
  int64_t next_show = bench::NowNs() + 1'000'000'000;
  for (int64_t now = bench::NowNs(); now < deadline_ns && !g_stop.load(); now = bench::NowNs()) {
    absl::SleepFor(absl::Nanoseconds(std::min<int64_t>(deadline_ns - now, 100'000'000)));
    if (bench::NowNs() >= next_show) {
      progress.Show(phase, bench::NowNs());
      next_show += 1'000'000'000;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator for the 5-byte length-header reverse protocol.\n"
      "Usage: gateway-bench --port=6789 --conns=100 --pipeline=16 --size=64 --duration=10s\n"
      "       gateway-bench --rate=50000 --conns=100      (open loop)\n"
      "       gateway-bench --idle=10000 --server_pid=PID (idle connections, server RSS per connection)");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) { return absl::StrContains(path, "bench/"); };
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction stop_action {};
  stop_action.sa_handler = OnStopSignal;
  sigaction(SIGINT, &stop_action, nullptr);
  sigaction(SIGTERM, &stop_action, nullptr);
  RaiseFdLimit();

  bench::RunResult r;
  r.label = absl::GetFlag(FLAGS_label);
  r.host = absl::GetFlag(FLAGS_host);
  r.port = absl::GetFlag(FLAGS_port);
  r.pipeline = absl::GetFlag(FLAGS_pipeline);
  r.size = absl::GetFlag(FLAGS_size);
  r.threads = absl::GetFlag(FLAGS_threads);
  r.rate = absl::GetFlag(FLAGS_rate);
  r.server_pid = absl::GetFlag(FLAGS_server_pid);
  r.backend_pid = absl::GetFlag(FLAGS_backend_pid);
  r.accept_error_frames = absl::GetFlag(FLAGS_accept_error_frames);
  const int idle = absl::GetFlag(FLAGS_idle);
  r.mode = idle > 0 ? Mode::kIdle : r.rate > 0 ? Mode::kOpenLoop : Mode::kClosedLoop;
  r.conns = idle > 0 ? idle : absl::GetFlag(FLAGS_conns);
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Duration warmup = r.mode == Mode::kIdle ? absl::ZeroDuration() : absl::GetFlag(FLAGS_warmup);
  r.warmup_s = absl::ToDoubleSeconds(warmup);
  const int connect_batch = absl::GetFlag(FLAGS_connect_batch);
  r.reconnect = absl::GetFlag(FLAGS_reconnect);
  r.targets = absl::GetFlag(FLAGS_targets);
  const int reconnect_attempts = absl::GetFlag(FLAGS_reconnect_attempts);
  const absl::Duration settle = absl::GetFlag(FLAGS_settle);

  if (r.port < 1 || r.port > 65535) Usage("--port must be 1..65535");
  if (r.conns < 1) Usage("--conns (or --idle) must be >= 1");
  if (r.pipeline < 1 || r.pipeline > 512) Usage("--pipeline must be 1..512");
  if (r.size < 1 || r.size > bench::PayloadPattern::kMaxSize) Usage("--size must be 1..99999");
  if (duration <= absl::ZeroDuration()) Usage("--duration must be > 0");
  if (warmup < absl::ZeroDuration()) Usage("--warmup must be >= 0");
  if (r.threads < 1 || r.threads > 256) Usage("--threads must be 1..256");
  if (r.rate < 0) Usage("--rate must be >= 0");
  if (idle < 0) Usage("--idle must be >= 0");
  if (connect_batch < 1) Usage("--connect_batch must be >= 1");
  if (r.server_pid < 0) Usage("--server_pid must be a process id");
  if (!r.targets.empty() && !r.reconnect) Usage("--targets needs --reconnect");
  if (reconnect_attempts < 1) Usage("--reconnect_attempts must be >= 1");
  if (settle < absl::ZeroDuration()) Usage("--settle must be >= 0");
  if (r.backend_pid < 0) Usage("--backend_pid must be a process id");
  if (r.conns + 64 > FdLimit()) {
    Usage(absl::StrCat("--conns ", r.conns, " exceeds the file descriptor limit (", FdLimit(), ")"));
  }
  r.threads = std::min(r.threads, r.conns);

  const bench::PayloadPattern payload(r.size);
  bench::WorkerOptions base = ResolveOrDie(r.host, r.port);
  base.mode = r.mode;
  base.pipeline = r.pipeline;
  base.accept_error_frames = r.accept_error_frames;
  base.connect_in_flight = std::max(1, connect_batch / r.threads);
  base.stop = &g_stop;
  bench::Targets targets;
  for (absl::string_view name : absl::StrSplit(r.targets, ',', absl::SkipEmpty())) {
    absl::StatusOr<bench::Endpoint> endpoint = bench::ResolveEndpoint(std::string(name));
    if (!endpoint.ok()) Usage(endpoint.status().message());
    targets.Add(*endpoint);
  }
  base.reconnect = r.reconnect;
  base.targets = r.targets.empty() ? nullptr : &targets;
  base.reconnect_attempts = reconnect_attempts;
  base.settle_ns = absl::ToInt64Nanoseconds(settle);
  std::vector<std::unique_ptr<bench::Worker>> workers;
  uint32_t first = 0;
  for (int t = 0; t < r.threads; ++t) {
    const int n = r.conns / r.threads + (t < r.conns % r.threads ? 1 : 0);
    bench::WorkerOptions options = base;
    options.rate = r.rate * n / r.conns;  // this thread's share
    workers.push_back(std::make_unique<bench::Worker>(options, payload, first, n));
    first += static_cast<uint32_t>(n);
  }

  if (r.server_pid > 0 && r.mode == Mode::kIdle) {
    absl::StatusOr<int64_t> rss = bench::ProcessRssBytes(r.server_pid);
    if (rss.ok()) r.rss_before = *rss;
  }

  // Phase 1: every worker opens and proves its connections.
  const int64_t connect_start = bench::NowNs();
  const int64_t connect_deadline = connect_start + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_connect_timeout));
  absl::BlockingCounter connected(r.threads);
  absl::Notification go;
  bench::RunClock clock;
  std::vector<std::thread> threads;
  for (auto& w : workers) {
    threads.emplace_back([&, worker = w.get()] {
      worker->Connect(connect_deadline);
      connected.DecrementCount();
      go.WaitForNotification();
      worker->Run(clock);
      worker->CloseAll();
    });
  }
  Progress progress(workers);
  std::thread waiter([&] { connected.Wait(); });
  // BlockingCounter has no timed wait: poll the counters for the progress line.
  for (;;) {
    int settled = 0;
    for (const auto& w : workers) {
      settled += w->counters().established.load(std::memory_order_relaxed) +
                 w->counters().lost.load(std::memory_order_relaxed);
    }
    if (settled >= r.conns) break;
    progress.Show("connect", bench::NowNs());
    absl::SleepFor(absl::Milliseconds(settled == 0 ? 1 : 100));
    // Workers give up on their own at the deadline or on a stop signal.
    if (bench::NowNs() > connect_deadline + 1'000'000'000 || g_stop.load()) break;
  }
  waiter.join();
  const int64_t connected_at = bench::NowNs();
  r.connect_s = static_cast<double>(connected_at - connect_start) / 1e9;
  for (const auto& w : workers) r.established += w->counters().established.load(std::memory_order_relaxed);

  if (r.mode == Mode::kIdle) {
    if (r.server_pid > 0) {
      absl::StatusOr<int64_t> rss = bench::ProcessRssBytes(r.server_pid);
      if (rss.ok()) r.rss_after = *rss;
    }
    progress.Finish();
    std::printf("idle: %d of %d connections established and proven; holding for %s\n", r.established, r.conns,
                absl::FormatDuration(duration).c_str());
    std::fflush(stdout);
  }

  // Phase 2: warmup, then the measured window (skipped when nothing connected).
  const bool any = r.established > 0;
  clock.start_ns = bench::NowNs();
  clock.measure_ns = clock.start_ns + (any ? absl::ToInt64Nanoseconds(warmup) : 0);
  clock.end_ns = clock.measure_ns + (any ? absl::ToInt64Nanoseconds(duration) : 0);
  go.Notify();
  WaitUntil(clock.measure_ns, "warmup", progress);
  const double client_cpu0 = bench::SelfCpuSeconds();
  absl::StatusOr<double> server_cpu0 = r.server_pid > 0 ? bench::ProcessCpuSeconds(r.server_pid) : 0.0;
  absl::StatusOr<double> backend_cpu0 = r.backend_pid > 0 ? bench::ProcessCpuSeconds(r.backend_pid) : 0.0;
  const int64_t window_start = bench::NowNs();
  WaitUntil(clock.end_ns, r.mode == Mode::kIdle ? "idle" : "measure", progress);
  const int64_t window_end = bench::NowNs();
  absl::StatusOr<double> server_cpu1 = r.server_pid > 0 ? bench::ProcessCpuSeconds(r.server_pid) : 0.0;
  absl::StatusOr<double> backend_cpu1 = r.backend_pid > 0 ? bench::ProcessCpuSeconds(r.backend_pid) : 0.0;
  r.client_cpu_s = bench::SelfCpuSeconds() - client_cpu0;
  r.window_s = static_cast<double>(window_end - window_start) / 1e9;
  r.interrupted = g_stop.load();
  if (r.server_pid > 0 && server_cpu0.ok() && server_cpu1.ok()) r.server_cpu_s = *server_cpu1 - *server_cpu0;
  if (r.backend_pid > 0 && backend_cpu0.ok() && backend_cpu1.ok()) r.backend_cpu_s = *backend_cpu1 - *backend_cpu0;
  for (auto& t : threads) t.join();
  progress.Finish();

  for (const auto& w : workers) {
    const bench::WorkerCounters& c = w->counters();
    r.requests += c.measured.load(std::memory_order_relaxed);
    r.unfinished += w->unfinished();
    r.latency.Merge(w->histogram());
    for (int k = 0; k < bench::kNumErrorKinds; ++k) r.errors[k] += c.errors[k].load(std::memory_order_relaxed);
    r.error_frames += c.error_frames.load(std::memory_order_relaxed);
    r.reconnects += c.reconnects.load(std::memory_order_relaxed);
    r.refused += c.refused.load(std::memory_order_relaxed);
    r.resets += c.resets.load(std::memory_order_relaxed);
    r.eofs += c.eofs.load(std::memory_order_relaxed);
    r.resent += c.resent.load(std::memory_order_relaxed);
    r.failed += c.failed.load(std::memory_order_relaxed);
    r.lost += c.lost_requests.load(std::memory_order_relaxed);
  }
  if (r.server_pid > 0 && r.server_cpu_s < 0 && r.mode != Mode::kIdle) {
    std::fprintf(stderr, "gateway-bench: could not read /proc/%d/stat\n", r.server_pid);
  }
  std::fputs(bench::FormatSummary(r).c_str(), stdout);
  std::printf("%s\n", bench::FormatJson(r).c_str());
  return r.ok() ? 0 : 1;
}
