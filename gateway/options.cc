#include "gateway/options.h"

#include "absl/status/statusor.h"
#include "gateway/socket_util.h"

namespace gateway {

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
  return ParseListenAddress(options.listen_address);
}

}  // namespace gateway
