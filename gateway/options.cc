#include "gateway/options.h"

#include "absl/strings/str_cat.h"

#include "absl/status/statusor.h"
#include "gateway/socket_util.h"

namespace gateway {

namespace {

absl::Status ValidateUpstream(const GatewayOptions& options) {
  const UpstreamOptions& u = options.upstream;
  if (!u.enabled()) return absl::OkStatus();
  if (options.reactor.io_model == IoModel::kBlocking) {
    return absl::InvalidArgumentError("--upstream needs a reactor IO model, not --io_model=blocking");
  }
  if (u.connections < 1 || u.connections > 8) return absl::InvalidArgumentError("--upstream_connections must be 1..8");
  if (u.timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("--upstream_timeout must be > 0");
  if (u.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--upstream_connect_timeout must be > 0");
  }
  if (u.max_inflight < 1) return absl::InvalidArgumentError("--upstream_max_inflight must be >= 1");
  if (u.max_pending < 1) return absl::InvalidArgumentError("--upstream_max_pending must be >= 1");
  if (u.probe_interval < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--upstream_probe_interval must be >= 0");
  }
  if (u.rise < 1) return absl::InvalidArgumentError("--upstream_rise must be >= 1");
  if (u.fall < 1) return absl::InvalidArgumentError("--upstream_fall must be >= 1");
  if (u.eject_after < 1) return absl::InvalidArgumentError("--upstream_eject_after must be >= 1");
  if (u.eject_backoff <= absl::ZeroDuration())
    return absl::InvalidArgumentError("--upstream_eject_backoff must be > 0");
  if (u.probe_payload.empty() || u.probe_payload.size() > 99999) {
    return absl::InvalidArgumentError("--upstream_probe_payload must be 1..99999 bytes");
  }
  for (const BackendSpec& spec : u.backends) {
    if (spec.weight < 1 || spec.weight > 1000) {
      return absl::InvalidArgumentError(absl::StrCat("--upstream: ", spec.address, ": the weight must be 1..1000"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SocketAddress> Validate(const GatewayOptions& options) {
  const ReactorOptions& r = options.reactor;
  if (options.reactors < 0 || options.reactors > 1024) return absl::InvalidArgumentError("--reactors must be 0..1024");
  if (r.max_connections < 0) return absl::InvalidArgumentError("--max_connections must be >= 0");
  if (r.idle_timeout < absl::ZeroDuration()) return absl::InvalidArgumentError("--idle_timeout must be >= 0");
  if (r.frame_timeout < absl::ZeroDuration()) return absl::InvalidArgumentError("--frame_timeout must be >= 0");
  if (r.max_queued_bytes < (1 << 20)) return absl::InvalidArgumentError("--max_queued_bytes must be >= 1048576");
  if (r.high_water < 1024 || r.high_water > (1 << 30)) {
    return absl::InvalidArgumentError("--high_water_bytes must be 1024..1073741824");
  }
  if (r.low_water > r.high_water) return absl::InvalidArgumentError("--low_water_bytes must be 0..--high_water_bytes");
  if (r.read_budget < 1) return absl::InvalidArgumentError("--read_budget must be >= 1");
  if (r.accept_budget < 1) return absl::InvalidArgumentError("accept_budget must be >= 1");  // no flag
  if (options.backlog < 1) return absl::InvalidArgumentError("--backlog must be >= 1");
  if (r.max_connection_age < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--max_connection_age must be >= 0");
  }
  if (!(r.max_connection_age_jitter >= 0 && r.max_connection_age_jitter < 1)) {
    return absl::InvalidArgumentError("--max_connection_age_jitter must be in [0, 1)");
  }
  if (r.max_connection_age > absl::ZeroDuration() && r.io_model == IoModel::kBlocking) {
    return absl::InvalidArgumentError("--max_connection_age needs a reactor model, not --io_model=blocking");
  }
  if (absl::Status upstream = ValidateUpstream(options); !upstream.ok()) return upstream;
  return ParseListenAddress(options.listen_address);
}

}  // namespace gateway
