// Every flag of the gateway binary. Defaults come from the options structs
// (GatewayOptions, ReactorOptions, UpstreamOptions, ControlServerOptions),
// not from literals.
#include "server/flags.h"

#include <unistd.h>

#include <cstdlib>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gateway/build_info.h"
#include "gateway/types.h"
#include "gateway/upstream_types.h"

namespace {

const gateway::GatewayOptions kGateway;
const gateway::ReactorOptions kReactor;
const gateway::control::ControlServerOptions kControl;
const gateway::UpstreamOptions kUpstream;

}  // namespace

ABSL_FLAG(std::string, listen, kGateway.listen_address,
          "Data-plane address, host:port ([v6]:port for IPv6; port 0 picks one)");
ABSL_FLAG(int, reactors, kGateway.reactors, "Event-loop threads; 0 = one per core");
ABSL_FLAG(gateway::IoModel, io_model, kReactor.io_model,
          "IO model at start: select, poll, epoll or io_uring (switchable at runtime with SetIoModel), or "
          "blocking (a thread per connection) or signal (O_ASYNC + F_SETSIG), which are fixed at start");
ABSL_FLAG(gateway::TriggerMode, trigger_mode, kReactor.trigger_mode,
          "epoll trigger mode at start: edge or level (switchable at runtime from the control plane)");
ABSL_FLAG(int64_t, max_connections, kReactor.max_connections,
          "Open connections allowed across all reactors; beyond it new ones are accepted and closed at once. "
          "0 = derived from the fd limit: RLIMIT_NOFILE minus the fds open at start minus a reserve for the "
          "control plane, metrics and files (a tenth of the limit, 64..1024)");
ABSL_FLAG(absl::Duration, idle_timeout, kReactor.idle_timeout,
          "Close connections with no traffic in either direction for this long; 0 = never");
ABSL_FLAG(absl::Duration, frame_timeout, kReactor.frame_timeout,
          "A frame whose first byte has arrived must be complete within this, however slowly its bytes trickle "
          "in (closed as frame_timeout after earlier responses are delivered); 0 = no limit");
ABSL_FLAG(int64_t, max_queued_bytes, kReactor.max_queued_bytes,
          "Bytes all connections together may hold in buffers (queued output, partial frames); above it no "
          "connection reads until they drain below 7/8 of it");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(10),
          "On SIGTERM/SIGINT, after --drain_delay: how long connections get to reach a frame boundary and flush "
          "before the rest are closed and the process exits");
ABSL_FLAG(absl::Duration, drain_delay, absl::ZeroDuration(),
          "On SIGTERM, readiness turns NOT_SERVING at once but the data plane keeps accepting for this long (the "
          "time a load balancer or Kubernetes' endpoints take to stop sending new clients); a second signal cuts "
          "it short");
ABSL_FLAG(absl::Duration, drain_spread, absl::ZeroDuration(),
          "On SIGTERM, after --drain_delay: connections are closed (each at a frame boundary, answered first) at "
          "random times over this window, so their clients do not reconnect elsewhere all at once");
ABSL_FLAG(absl::Duration, max_connection_age, kReactor.max_connection_age,
          "Close a connection older than this (give or take --max_connection_age_jitter) at its next frame "
          "boundary, answered first, so clients reconnect and rebalance over replicas; 0 = never");
ABSL_FLAG(double, max_connection_age_jitter, kReactor.max_connection_age_jitter,
          "Random spread of --max_connection_age, a fraction (0.1 = ±10%), so connections opened together do not "
          "all close together");
ABSL_FLAG(std::string, health_listen, "",
          "Plaintext listener serving only grpc.health.v1.Health, for Kubernetes' gRPC probes: services \"\" and "
          "\"readiness\" (NOT_SERVING from SIGTERM on), \"liveness\"; empty = off");
ABSL_FLAG(std::string, instance, "", "This replica's name in GetStats; empty = $POD_NAME, else the host name");
ABSL_FLAG(int64_t, high_water_bytes, static_cast<int64_t>(kReactor.high_water),
          "Per-connection queued output at which reading pauses; queued output never exceeds it by more than "
          "one frame (100,004 bytes)");
ABSL_FLAG(int64_t, low_water_bytes, static_cast<int64_t>(kReactor.low_water),
          "Queued output below which a paused connection reads again");
ABSL_FLAG(int, read_budget, kReactor.read_budget,
          "Reads (readv) per connection per wakeup, so one client cannot starve the rest");
ABSL_FLAG(int, backlog, kGateway.backlog, "listen() backlog per reactor");
ABSL_FLAG(std::string, control_listen, kControl.listen_address,
          "gRPC control-plane address, host:port ([v6]:port for IPv6); empty = no control plane");
ABSL_FLAG(std::string, control_tls_cert, "", "PEM certificate chain: serve the control plane over TLS only");
ABSL_FLAG(std::string, control_tls_key, "", "PEM private key for --control_tls_cert");
ABSL_FLAG(std::string, control_tls_client_ca, "",
          "PEM CA bundle: control-plane clients must present a certificate signed by it");
ABSL_FLAG(int, max_watchers, kControl.max_watchers,
          "Watch streams (WatchConnections, WatchBackends) open at once; more are refused with RESOURCE_EXHAUSTED; "
          "0 = no limit");
ABSL_FLAG(int64_t, watch_queue_bytes, static_cast<int64_t>(kControl.watch_queue_bytes),
          "Bytes of events queued per watcher that reads slowly; what does not fit is dropped and counted");
ABSL_FLAG(double, watch_events_per_sec, kControl.watch_events_per_sec,
          "Events sent per second over all WatchConnections streams together, so watchers cannot take the "
          "cores from the reactors; beyond it watchers' queues fill and drop (counted); 0 = no limit");
ABSL_FLAG(std::string, metrics_listen, "0.0.0.0:9464",
          "Prometheus metrics address (GET /metrics), IPv4-address:port or hostname:port; empty = no metrics server");
ABSL_FLAG(bool, metrics_latency, kReactor.measure_latency,
          "Time every request for gateway_request_duration_seconds (two clock reads per response batch)");
ABSL_FLAG(std::string, upstream, "",
          "Upstream mode: forward every client frame to these backends, host:port[=weight],... (weight 1..1000, "
          "default 1; a host name is resolved at start), and send each client its responses in its request order. "
          "Empty = answer frames here (reverse). Backends can be added, drained and removed at runtime");
ABSL_FLAG(int, upstream_connections, kUpstream.connections,
          "Upstream connections per backend per reactor (1..8), each carrying many clients' frames in order");
ABSL_FLAG(gateway::LoadBalancing, upstream_lb, kUpstream.lb,
          "How a frame picks its backend: round_robin (weighted), least_inflight (power of two choices) or hash "
          "(every frame of one client connection to one backend)");
ABSL_FLAG(gateway::UpstreamErrorMode, upstream_error, kUpstream.error_mode,
          "What a client gets for a frame a backend took and never answered: empty (the empty frame 00000 in its "
          "place; the connection stays open) or close (the earlier responses, then FIN)");
ABSL_FLAG(absl::Duration, upstream_timeout, kUpstream.timeout,
          "A request written to a backend must be answered within this, or it gets the error response");
ABSL_FLAG(absl::Duration, upstream_connect_timeout, kUpstream.connect_timeout,
          "A connect to a backend must complete within this");
ABSL_FLAG(int, upstream_max_inflight, kUpstream.max_inflight,
          "Requests written and unanswered per upstream connection; beyond it they wait (--upstream_max_pending)");
ABSL_FLAG(int, upstream_max_pending, kUpstream.max_pending,
          "Requests waiting to be written per backend per reactor; when every healthy backend is full, clients stop "
          "being read (backpressure)");
ABSL_FLAG(absl::Duration, upstream_probe_interval, kUpstream.probe_interval,
          "Active health check: a probe frame to each backend this often, on its own connection; 0 = off");
ABSL_FLAG(int, upstream_rise, kUpstream.rise, "Successful probes in a row that mark an unhealthy backend healthy");
ABSL_FLAG(int, upstream_fall, kUpstream.fall, "Failed probes in a row that mark a backend unhealthy");
ABSL_FLAG(int, upstream_eject_after, kUpstream.eject_after,
          "Consecutive request errors or timeouts that eject a backend (passive health); it comes back only after "
          "a probe succeeds");
ABSL_FLAG(absl::Duration, upstream_eject_backoff, kUpstream.eject_backoff,
          "How long an ejected backend waits before it is probed again; doubled per ejection, up to 30s");
ABSL_FLAG(std::string, upstream_probe_payload, kUpstream.probe_payload,
          "The probe frame's payload (1..99999 bytes); any non-empty answer counts as success");

namespace gateway::server {
namespace {

// --upstream and its companions into `options.upstream`; the ranges are
// checked by Validate with the rest.
absl::Status UpstreamOptionsFromFlags(GatewayOptions& options) {
  const std::string backends = absl::GetFlag(FLAGS_upstream);
  if (backends.empty()) {
    // A companion set without --upstream would be ignored silently: say so.
    // (Abseil 20220623 keeps IsSpecifiedOnCommandLine private; a value left
    // at its default changes nothing anyway.)
    for (const absl::CommandLineFlag* flag :
         {&absl::GetFlagReflectionHandle(FLAGS_upstream_connections), &absl::GetFlagReflectionHandle(FLAGS_upstream_lb),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_error), &absl::GetFlagReflectionHandle(FLAGS_upstream_timeout),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_connect_timeout),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_max_inflight),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_max_pending),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_probe_interval),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_rise), &absl::GetFlagReflectionHandle(FLAGS_upstream_fall),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_eject_after),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_eject_backoff),
          &absl::GetFlagReflectionHandle(FLAGS_upstream_probe_payload)}) {
      if (flag->CurrentValue() != flag->DefaultValue()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag->Name(), " applies to upstream mode only: give --upstream=host:port,... too"));
      }
    }
    return absl::OkStatus();
  }
  if (options.reactor.io_model == IoModel::kBlocking) {
    return absl::InvalidArgumentError(
        "--upstream needs an event-loop IO model: --io_model=blocking (a thread per client) cannot multiplex "
        "clients over shared backend connections; use epoll, io_uring, poll, select or signal");
  }
  absl::StatusOr<std::vector<BackendSpec>> specs = ParseBackendList(backends);
  if (!specs.ok()) return absl::InvalidArgumentError(absl::StrCat("--upstream: ", specs.status().message()));
  UpstreamOptions& u = options.upstream;
  u.backends = *std::move(specs);
  u.connections = absl::GetFlag(FLAGS_upstream_connections);
  u.lb = absl::GetFlag(FLAGS_upstream_lb);
  u.error_mode = absl::GetFlag(FLAGS_upstream_error);
  u.timeout = absl::GetFlag(FLAGS_upstream_timeout);
  u.connect_timeout = absl::GetFlag(FLAGS_upstream_connect_timeout);
  u.max_inflight = absl::GetFlag(FLAGS_upstream_max_inflight);
  u.max_pending = absl::GetFlag(FLAGS_upstream_max_pending);
  u.probe_interval = absl::GetFlag(FLAGS_upstream_probe_interval);
  u.rise = absl::GetFlag(FLAGS_upstream_rise);
  u.fall = absl::GetFlag(FLAGS_upstream_fall);
  u.eject_after = absl::GetFlag(FLAGS_upstream_eject_after);
  u.eject_backoff = absl::GetFlag(FLAGS_upstream_eject_backoff);
  u.probe_payload = absl::GetFlag(FLAGS_upstream_probe_payload);
  return absl::OkStatus();
}

// --instance, else $POD_NAME (Kubernetes' downward API), else the host name.
std::string InstanceName(std::string flag) {
  if (!flag.empty()) return flag;
  if (const char* pod = std::getenv("POD_NAME"); pod != nullptr && pod[0] != '\0') return pod;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) return host;
  return "";
}

}  // namespace

std::string VersionLine() {
  return absl::StrCat("gateway ", build_info::kVersion, " (revision ", build_info::kRevision, ", ",
                      build_info::kBuildType, " build, ", build_info::kCompiler, ")");
}

void ConfigureUsage() {
  absl::SetProgramUsageMessage(
      "A connection gateway for the 5-byte length-header protocol.\n"
      "Usage: gateway [--listen=0.0.0.0:6789] [--io_model=epoll|io_uring|poll|select|blocking|signal] "
      "[--trigger_mode=edge|level] [--reactors=N] ...\n"
      "Try: printf '00003abc' | nc -q1 localhost 6789   # -> 00003cba\n"
      "Proxy: gateway --upstream=10.0.0.1:7000,10.0.0.2:7000=3 [--upstream_lb=round_robin|least_inflight|hash]");
  absl::FlagsUsageConfig config;
  // Abseil records each flag's __FILE__; this file's own __FILE__ is the same
  // string, so our flags get a plain label and no path of the build machine.
  config.normalize_filename = [](absl::string_view file) -> std::string {
    return file == __FILE__ ? kFlagsLabel : std::string(file);
  };
  config.contains_help_flags = [](absl::string_view label) { return label == kFlagsLabel; };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] { return VersionLine() + "\n"; };
  absl::SetFlagsUsageConfig(config);
}

absl::StatusOr<GatewayOptions> GatewayOptionsFromFlags() {
  GatewayOptions options;
  options.listen_address = absl::GetFlag(FLAGS_listen);
  options.reactors = absl::GetFlag(FLAGS_reactors);
  options.backlog = absl::GetFlag(FLAGS_backlog);
  ReactorOptions& r = options.reactor;
  r.io_model = absl::GetFlag(FLAGS_io_model);
  r.trigger_mode = absl::GetFlag(FLAGS_trigger_mode);
  r.max_connections = absl::GetFlag(FLAGS_max_connections);
  r.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  r.frame_timeout = absl::GetFlag(FLAGS_frame_timeout);
  r.max_queued_bytes = absl::GetFlag(FLAGS_max_queued_bytes);
  // A negative value becomes a huge size_t, which Validate rejects with the
  // same message as any other out-of-range value.
  r.high_water = static_cast<size_t>(absl::GetFlag(FLAGS_high_water_bytes));
  r.low_water = static_cast<size_t>(absl::GetFlag(FLAGS_low_water_bytes));
  r.read_budget = absl::GetFlag(FLAGS_read_budget);
  r.measure_latency = absl::GetFlag(FLAGS_metrics_latency);
  r.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  r.max_connection_age_jitter = absl::GetFlag(FLAGS_max_connection_age_jitter);
  options.instance = InstanceName(absl::GetFlag(FLAGS_instance));
  if (absl::Status upstream = UpstreamOptionsFromFlags(options); !upstream.ok()) return upstream;
  if (absl::StatusOr<SocketAddress> valid = Validate(options); !valid.ok()) return valid.status();
  if (absl::GetFlag(FLAGS_drain_timeout) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--drain_timeout must be >= 0");
  }
  if (absl::GetFlag(FLAGS_drain_delay) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--drain_delay must be >= 0");
  }
  if (absl::GetFlag(FLAGS_drain_spread) < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--drain_spread must be >= 0");
  }
  return options;
}

absl::StatusOr<control::ControlServerOptions> ControlOptionsFromFlags() {
  control::ControlServerOptions options;
  options.listen_address = absl::GetFlag(FLAGS_control_listen);
  options.tls_cert_file = absl::GetFlag(FLAGS_control_tls_cert);
  options.tls_key_file = absl::GetFlag(FLAGS_control_tls_key);
  options.tls_client_ca_file = absl::GetFlag(FLAGS_control_tls_client_ca);
  options.max_watchers = absl::GetFlag(FLAGS_max_watchers);
  if (options.max_watchers < 0) return absl::InvalidArgumentError("--max_watchers must be >= 0");
  const int64_t queue_bytes = absl::GetFlag(FLAGS_watch_queue_bytes);
  if (queue_bytes < static_cast<int64_t>(control::kMinWatchQueueBytes)) {
    return absl::InvalidArgumentError(absl::StrCat("--watch_queue_bytes must be >= ", control::kMinWatchQueueBytes));
  }
  options.watch_queue_bytes = static_cast<size_t>(queue_bytes);
  options.watch_events_per_sec = absl::GetFlag(FLAGS_watch_events_per_sec);
  return options;
}

}  // namespace gateway::server
