// The gateway binary: flags -> options -> data plane -> metrics -> control
// plane -> wait for SIGTERM/SIGINT -> drain.
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "control/control_server.h"
#include "control/health_server.h"
#include "gateway/gateway.h"
#include "metrics/metrics.h"
#include "server/flags.h"

namespace gateway::server {
namespace {

[[noreturn]] void Fail(absl::string_view message) {
  std::fprintf(stderr, "gateway: %s\n", std::string(message).c_str());
  std::exit(1);
}

template <typename T>
T OrFail(absl::StatusOr<T> value) {
  if (!value.ok()) Fail(value.status().message());
  return *std::move(value);
}

void RaiseFdLimit() {
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// SIGPIPE must never kill us (sends use MSG_NOSIGNAL too); SIGTERM/SIGINT are
// taken synchronously by the main thread, so every thread started after this
// inherits a mask with them blocked. Returns the blocked set.
sigset_t BlockStopSignals() {
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

int WaitForStopSignal(const sigset_t& stop_signals) {
  int signo = 0;
  while (sigwait(&stop_signals, &signo) != 0) {
  }
  return signo;
}

// Sleeps `delay`, or less if another stop signal comes (an operator who
// insists). Returns whether one came.
bool SleepUnlessSignalled(const sigset_t& stop_signals, absl::Duration delay) {
  const absl::Time until = absl::Now() + delay;
  for (absl::Duration left = delay; left > absl::ZeroDuration(); left = until - absl::Now()) {
    const timespec timeout = absl::ToTimespec(left);
    if (sigtimedwait(&stop_signals, nullptr, &timeout) > 0) return true;
    // EAGAIN: the time is up; EINTR: another signal, wait on.
  }
  return false;
}

std::unique_ptr<MetricsServer> StartMetrics(const Gateway* gw) {
  const std::string address = absl::GetFlag(FLAGS_metrics_listen);
  if (address.empty()) return nullptr;
  std::unique_ptr<MetricsServer> metrics = OrFail(MetricsServer::Start(address, gw));
  std::fprintf(stderr, "gateway: metrics on http://%s/metrics (port %d)\n", address.c_str(), metrics->port());
  return metrics;
}

// "upstream mode: 2 backends (10.0.0.1:7000, 10.0.0.2:7000 weight 3), ...",
// or nothing when frames are answered here.
void ReportUpstream(const UpstreamOptions& u) {
  if (!u.enabled()) return;
  std::string backends;
  for (const BackendSpec& spec : u.backends) {
    absl::StrAppend(&backends, backends.empty() ? "" : ", ", spec.address);
    if (spec.weight != BackendSpec().weight) absl::StrAppend(&backends, " weight ", spec.weight);
  }
  std::fprintf(stderr,
               "gateway: upstream mode: %zu backend(s) (%s), lb %s, %d connection(s) per backend per reactor, "
               "timeout %s, errors as %s\n",
               u.backends.size(), backends.c_str(), std::string(LoadBalancingName(u.lb)).c_str(), u.connections,
               absl::FormatDuration(u.timeout).c_str(),
               u.error_mode == UpstreamErrorMode::kClose ? "close" : "the empty frame");
}

void StartDataPlane(Gateway* gw) {
  gw->Start();
  const FdBudget& fds = gw->fd_budget();
  const int64_t max_connections = gw->options().reactor.max_connections;
  std::string model(IoModelName(gw->io_model()));  // "epoll, edge-triggered", "io_uring", ...
  if (gw->io_model() == IoModel::kEpoll)
    absl::StrAppend(&model, ", ", TriggerModeName(gw->trigger_mode()), "-triggered");
  std::fprintf(stderr,
               "gateway: serving %s (port %d) with %d reactor(s), %s, max_connections %lld "
               "(fd limit %lld, %lld open at start, %lld reserved)\n",
               gw->options().listen_address.c_str(), gw->port(), gw->num_reactors(), model.c_str(),
               static_cast<long long>(max_connections), static_cast<long long>(fds.limit),
               static_cast<long long>(fds.open), static_cast<long long>(fds.reserve));
  ReportUpstream(gw->options().upstream);
  if (max_connections > fds.max_connections) {
    std::fprintf(stderr,
                 "gateway: warning: --max_connections=%lld is above what the fd limit leaves (%lld): past that, "
                 "clients are shed and the control plane may stop accepting\n",
                 static_cast<long long>(max_connections), static_cast<long long>(fds.max_connections));
  }
}

// Null when --control_listen is empty. On failure, stops what already runs
// and exits.
std::unique_ptr<control::ControlServer> StartControl(Gateway* gw, const control::ControlServerOptions& options,
                                                     std::unique_ptr<MetricsServer>& metrics) {
  if (options.listen_address.empty()) return nullptr;
  absl::StatusOr<std::unique_ptr<control::ControlServer>> control = control::StartControlServer(gw, options);
  if (!control.ok()) {
    gw->Shutdown(absl::ZeroDuration());
    metrics.reset();
    Fail(control.status().message());
  }
  std::fprintf(stderr, "gateway: control plane on %s (port %d, %s)\n", options.listen_address.c_str(),
               (*control)->port(), options.tls_cert_file.empty() ? "plaintext" : "TLS");
  return *std::move(control);
}

// Null when --health_listen is empty. On failure, stops what already runs
// and exits.
std::unique_ptr<control::HealthServer> StartHealth(Gateway* gw, std::unique_ptr<control::ControlServer>& control,
                                                   std::unique_ptr<MetricsServer>& metrics) {
  const std::string address = absl::GetFlag(FLAGS_health_listen);
  if (address.empty()) return nullptr;
  absl::StatusOr<std::unique_ptr<control::HealthServer>> health = control::HealthServer::Start(address);
  if (!health.ok()) {
    gw->Shutdown(absl::ZeroDuration());
    control.reset();
    metrics.reset();
    Fail(health.status().message());
  }
  std::fprintf(stderr, "gateway: health checks on %s (port %d, grpc.health.v1: readiness, liveness)\n", address.c_str(),
               (*health)->port());
  return *std::move(health);
}

// SIGTERM in Kubernetes' order: not ready at once (endpoints start
// dropping us), still accepting for --drain_delay (they take that long),
// then connections close at frame boundaries over --drain_spread, and the
// process exits when they are gone or at --drain_timeout.
void Drain(Gateway* gw, control::ControlServer* control, control::HealthServer* health, const sigset_t& stop_signals,
           int signo) {
  const absl::Duration delay = absl::GetFlag(FLAGS_drain_delay);
  const absl::Duration spread = absl::GetFlag(FLAGS_drain_spread);
  const absl::Duration timeout = absl::GetFlag(FLAGS_drain_timeout);
  std::fprintf(stderr,
               "gateway: %s received, draining: not ready; accepting for %s more, then closing connections at frame "
               "boundaries over %s, for at most %s\n",
               signo == SIGTERM ? "SIGTERM" : "SIGINT", absl::FormatDuration(delay).c_str(),
               absl::FormatDuration(spread).c_str(), absl::FormatDuration(timeout).c_str());
  gw->AnnounceDrain();
  if (health) health->SetReady(false);
  if (control) control->SetReady(false);
  if (delay > absl::ZeroDuration() && SleepUnlessSignalled(stop_signals, delay)) {
    std::fprintf(stderr, "gateway: second stop signal: drain delay cut short\n");
  }
  std::fprintf(stderr, "gateway: no longer accepting; %lld connection(s) to close\n",
               static_cast<long long>(gw->active_connections()));
  gw->Shutdown(timeout, std::min(spread, timeout));
}

// The machine-readable line scripts and tests read the ports from; a port is
// 0 when its server is off.
void ReportReady(const Gateway& gw, const MetricsServer* metrics, const control::ControlServer* control,
                 const control::HealthServer* health) {
  std::fprintf(stderr, "gateway: ready {\"data_port\":%d,\"control_port\":%d,\"metrics_port\":%d,\"health_port\":%d}\n",
               gw.port(), control != nullptr ? control->port() : 0, metrics != nullptr ? metrics->port() : 0,
               health != nullptr ? health->port() : 0);
}

int Run(int argc, char** argv) {
  ConfigureUsage();
  absl::ParseCommandLine(argc, argv);
  // Debian builds Abseil without NDEBUG, which leaves deadlock detection on
  // for every absl::Mutex (gRPC's included): a cost on each lock, no use here.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  GatewayOptions options = OrFail(GatewayOptionsFromFlags());
  const control::ControlServerOptions control_options = OrFail(ControlOptionsFromFlags());

  const sigset_t stop_signals = BlockStopSignals();
  RaiseFdLimit();

  std::unique_ptr<Gateway> gw = OrFail(Gateway::Create(std::move(options)));
  std::unique_ptr<MetricsServer> metrics = StartMetrics(gw.get());
  StartDataPlane(gw.get());
  std::unique_ptr<control::ControlServer> control = StartControl(gw.get(), control_options, metrics);
  std::unique_ptr<control::HealthServer> health = StartHealth(gw.get(), control, metrics);
  ReportReady(*gw, metrics.get(), control.get(), health.get());

  const int signo = WaitForStopSignal(stop_signals);
  Drain(gw.get(), control.get(), health.get(), stop_signals, signo);
  if (control) control->Shutdown(absl::Seconds(1));  // watchers get the drain's close events, then OK
  if (health) health->Shutdown();
  metrics.reset();  // before the gateway it reads
  std::fprintf(stderr, "gateway: stopped\n");
  return 0;
}

}  // namespace
}  // namespace gateway::server

int main(int argc, char** argv) { return gateway::server::Run(argc, argv); }
