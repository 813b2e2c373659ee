// The gateway binary: flags -> data plane -> wait for SIGTERM/SIGINT -> drain.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "control/control_server.h"
#include "control/metrics.h"
#include "gateway/gateway.h"

ABSL_FLAG(std::string, listen, "0.0.0.0:6789", "Data-plane address, host:port ([v6]:port for IPv6; port 0 picks one)");
ABSL_FLAG(int, reactors, 0, "Event-loop threads; 0 = one per core");
ABSL_FLAG(gateway::TriggerMode, trigger_mode, gateway::TriggerMode::kEdge,
          "epoll trigger mode at start: edge or level (switchable at runtime from the control plane)");
ABSL_FLAG(int64_t, max_connections, 0,
          "Open connections allowed across all reactors; beyond it new ones are accepted and closed at once. "
          "0 = derived from the fd limit: RLIMIT_NOFILE minus the fds open at start minus a reserve for the "
          "control plane, metrics and files (a tenth of the limit, 64..1024)");
ABSL_FLAG(absl::Duration, idle_timeout, gateway::ReactorOptions{}.idle_timeout,
          "Close connections with no traffic in either direction for this long; 0 = never");
ABSL_FLAG(absl::Duration, frame_timeout, gateway::ReactorOptions{}.frame_timeout,
          "A frame whose first byte has arrived must be complete within this, however slowly its bytes trickle "
          "in (closed as frame_timeout after earlier responses are delivered); 0 = no limit");
ABSL_FLAG(int64_t, max_queued_bytes, gateway::ReactorOptions{}.max_queued_bytes,
          "Bytes all connections together may hold in buffers (queued output, partial frames); above it no "
          "connection reads until they drain below 7/8 of it");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "On SIGTERM/SIGINT, how long to let connections flush before closing them");
ABSL_FLAG(int64_t, high_water_bytes, 256 * 1024,
          "Per-connection queued output at which reading pauses; queued output never exceeds it by more than "
          "one frame (100,004 bytes)");
ABSL_FLAG(int64_t, low_water_bytes, 64 * 1024, "Queued output below which a paused connection reads again");
ABSL_FLAG(int, read_budget, 16, "recv() calls per connection per wakeup, so one client cannot starve the rest");
ABSL_FLAG(int, backlog, 4096, "listen() backlog per reactor");
ABSL_FLAG(std::string, control_listen, "127.0.0.1:50051",
          "gRPC control-plane address, host:port ([v6]:port for IPv6); empty = no control plane");
ABSL_FLAG(std::string, control_tls_cert, "", "PEM certificate chain: serve the control plane over TLS only");
ABSL_FLAG(std::string, control_tls_key, "", "PEM private key for --control_tls_cert");
ABSL_FLAG(std::string, control_tls_client_ca, "",
          "PEM CA bundle: control-plane clients must present a certificate signed by it");
ABSL_FLAG(int, max_watchers, gateway::control::ControlServerOptions{}.max_watchers,
          "WatchConnections streams open at once; more are refused with RESOURCE_EXHAUSTED; 0 = no limit");
ABSL_FLAG(int64_t, watch_queue_bytes, gateway::control::ControlServerOptions{}.watch_queue_bytes,
          "Bytes of events queued per watcher that reads slowly; what does not fit is dropped and counted");
ABSL_FLAG(double, watch_events_per_sec, gateway::control::ControlServerOptions{}.watch_events_per_sec,
          "Events sent per second over all WatchConnections streams together, so watchers cannot take the "
          "cores from the reactors; beyond it watchers' queues fill and drop (counted); 0 = no limit");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464",
          "Prometheus metrics address (GET /metrics), IPv4-address:port or hostname:port; empty = no metrics server");
ABSL_FLAG(bool, metrics_latency, true,
          "Time every request for gateway_request_duration_seconds (two clock reads per response batch)");

namespace {

[[noreturn]] void Fail(absl::string_view message) {
  std::fprintf(stderr, "gateway: %s\n", std::string(message).c_str());
  std::exit(1);
}

void RaiseFdLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

absl::StatusOr<gateway::GatewayOptions> OptionsFromFlags() {
  gateway::GatewayOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.reactors = absl::GetFlag(FLAGS_reactors);
  options.backlog = absl::GetFlag(FLAGS_backlog);
  gateway::ReactorOptions& r = options.reactor;
  r.trigger_mode = absl::GetFlag(FLAGS_trigger_mode);
  r.max_connections = absl::GetFlag(FLAGS_max_connections);
  r.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  r.frame_timeout = absl::GetFlag(FLAGS_frame_timeout);
  r.max_queued_bytes = absl::GetFlag(FLAGS_max_queued_bytes);
  const int64_t high = absl::GetFlag(FLAGS_high_water_bytes);
  const int64_t low = absl::GetFlag(FLAGS_low_water_bytes);
  r.read_budget = absl::GetFlag(FLAGS_read_budget);
  r.measure_latency = absl::GetFlag(FLAGS_metrics_latency);
  if (options.reactors < 0 || options.reactors > 1024) return absl::InvalidArgumentError("--reactors must be 0..1024");
  if (r.max_connections < 0) return absl::InvalidArgumentError("--max_connections must be >= 0");
  if (r.idle_timeout < absl::ZeroDuration()) return absl::InvalidArgumentError("--idle_timeout must be >= 0");
  if (r.frame_timeout < absl::ZeroDuration()) return absl::InvalidArgumentError("--frame_timeout must be >= 0");
  if (r.max_queued_bytes < (1 << 20)) return absl::InvalidArgumentError("--max_queued_bytes must be >= 1048576");
  if (absl::GetFlag(FLAGS_drain_timeout) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--drain_timeout must be >= 0");
  }
  if (high < 1024 || high > (1 << 30)) return absl::InvalidArgumentError("--high_water_bytes must be 1024..1073741824");
  if (low < 0 || low > high) return absl::InvalidArgumentError("--low_water_bytes must be 0..--high_water_bytes");
  if (r.read_budget < 1) return absl::InvalidArgumentError("--read_budget must be >= 1");
  if (options.backlog < 1) return absl::InvalidArgumentError("--backlog must be >= 1");
  if (absl::GetFlag(FLAGS_max_watchers) < 0) return absl::InvalidArgumentError("--max_watchers must be >= 0");
  if (absl::GetFlag(FLAGS_watch_queue_bytes) < static_cast<int64_t>(gateway::control::kMinWatchQueueBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--watch_queue_bytes must be >= ", gateway::control::kMinWatchQueueBytes));
  }
  r.high_water = static_cast<size_t>(high);
  r.low_water = static_cast<size_t>(low);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A connection gateway for the 5-byte length-header protocol.\n"
      "Usage: gateway [--listen=0.0.0.0:6789] [--trigger_mode=edge|level] [--reactors=N] ...\n"
      "Try: printf '00003abc' | nc -q1 localhost 6789   # -> 00003cba");
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view path) {
    return absl::StrContains(path, "gateway/main.cc") || absl::StrContains(path, "control/");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);
  // Debian builds Abseil without NDEBUG, which leaves deadlock detection on
  // for every absl::Mutex (gRPC's included): a cost on each lock, no use here.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  absl::StatusOr<gateway::GatewayOptions> options = OptionsFromFlags();
  if (!options.ok()) Fail(options.status().message());

  // SIGPIPE must never kill us (sends use MSG_NOSIGNAL too); SIGTERM/SIGINT are
  // taken synchronously by this thread, so every thread started below
  // inherits a mask with them blocked.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  RaiseFdLimit();

  absl::StatusOr<std::unique_ptr<gateway::Gateway>> gw = gateway::Gateway::Create(*std::move(options));
  if (!gw.ok()) Fail(gw.status().message());
  std::unique_ptr<gateway::MetricsServer> metrics;
  if (const std::string address = absl::GetFlag(FLAGS_metrics_listen); !address.empty()) {
    absl::StatusOr<std::unique_ptr<gateway::MetricsServer>> started = gateway::MetricsServer::Start(address, gw->get());
    if (!started.ok()) Fail(started.status().message());
    metrics = *std::move(started);
    std::fprintf(stderr, "gateway: metrics on http://%s/metrics (port %d)\n", address.c_str(), metrics->port());
  }
  (*gw)->Start();
  const gateway::FdBudget& fds = (*gw)->fd_budget();
  const int64_t max_connections = (*gw)->options().reactor.max_connections;
  std::fprintf(stderr,
               "gateway: serving %s (port %d) with %d reactor(s), %s-triggered, max_connections %lld "
               "(fd limit %lld, %lld open at start, %lld reserved)\n",
               absl::GetFlag(FLAGS_listen).c_str(), (*gw)->port(), (*gw)->num_reactors(),
               std::string(gateway::TriggerModeName((*gw)->trigger_mode())).c_str(),
               static_cast<long long>(max_connections), static_cast<long long>(fds.limit),
               static_cast<long long>(fds.open), static_cast<long long>(fds.reserve));
  if (max_connections > fds.max_connections) {
    std::fprintf(stderr,
                 "gateway: warning: --max_connections=%lld is above what the fd limit leaves (%lld): past that, "
                 "clients are shed and the control plane may stop accepting\n",
                 static_cast<long long>(max_connections), static_cast<long long>(fds.max_connections));
  }
  std::unique_ptr<gateway::control::ControlServer> control;
  if (const std::string address = absl::GetFlag(FLAGS_control_listen); !address.empty()) {
    gateway::control::ControlServerOptions control_options;
    control_options.listen_address = address;
    control_options.tls_cert_file = absl::GetFlag(FLAGS_control_tls_cert);
    control_options.tls_key_file = absl::GetFlag(FLAGS_control_tls_key);
    control_options.tls_client_ca_file = absl::GetFlag(FLAGS_control_tls_client_ca);
    control_options.max_watchers = absl::GetFlag(FLAGS_max_watchers);
    control_options.watch_queue_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_watch_queue_bytes));
    control_options.watch_events_per_sec = absl::GetFlag(FLAGS_watch_events_per_sec);
    absl::StatusOr<std::unique_ptr<gateway::control::ControlServer>> started =
        gateway::control::StartControlServer(gw->get(), control_options);
    if (!started.ok()) {
      (*gw)->Shutdown(absl::ZeroDuration());
      metrics.reset();
      Fail(started.status().message());
    }
    control = *std::move(started);
    std::fprintf(stderr, "gateway: control plane on %s (port %d, %s)\n", address.c_str(), control->port(),
                 control_options.tls_cert_file.empty() ? "plaintext" : "TLS");
  }

  int signo = 0;
  while (sigwait(&stop_signals, &signo) != 0) {
  }
  std::fprintf(stderr, "gateway: %s received, draining\n", signo == SIGTERM ? "SIGTERM" : "SIGINT");
  (*gw)->Shutdown(absl::GetFlag(FLAGS_drain_timeout));
  if (control) control->Shutdown(absl::Seconds(1));  // watchers get the drain's close events, then OK
  metrics.reset();  // before the gateway it reads
  std::fprintf(stderr, "gateway: stopped\n");
  return 0;
}
