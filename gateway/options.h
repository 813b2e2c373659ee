// What a gateway is configured with: the data plane's options, their
// defaults (the binary's flag defaults come from here) and their validation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/frame_handler.h"
#include "gateway/socket_util.h"
#include "gateway/types.h"
#include "gateway/upstream_types.h"

namespace gateway {

// Settings every reactor shares; immutable once the gateway starts.
struct ReactorOptions {
  // The back-end at start: select, poll, epoll or io_uring (signal: at
  // start only). Blocking is not a reactor back-end: with it the gateway
  // runs a BlockingServer (a thread per connection) instead of reactors.
  IoModel io_model = IoModel::kEpoll;
  TriggerMode trigger_mode = TriggerMode::kEdge;  // for epoll
  // Across all reactors. 0 = derived from the fd limit (Gateway::Create
  // resolves it: RLIMIT_NOFILE minus the fds open at start minus a reserve).
  int64_t max_connections = 0;
  absl::Duration idle_timeout = absl::Minutes(10);  // no traffic at all; zero = off
  // A frame whose first byte has arrived must be whole within this; zero = off.
  absl::Duration frame_timeout = absl::Seconds(30);
  // Above this many bytes in connection buffers (all reactors), no connection
  // reads until they drain below 7/8 of it.
  int64_t max_queued_bytes = int64_t{1} << 30;
  size_t high_water = 256 * 1024;            // pause reading above this much queued output
  size_t low_water = 64 * 1024;              // resume reading below this
  int read_budget = 16;                      // reads per connection per wakeup
  int accept_budget = 64;                    // accept() calls per wakeup
  bool measure_latency = true;               // time every request (two clock reads per batch)
  absl::Duration linger = absl::Seconds(5);  // wait for the peer's FIN after ours
  // A connection older than this, give or take the jitter (a fraction, so
  // connections opened together do not all leave together), is closed at
  // its next frame boundary once answered; zero = off. Clients reconnect,
  // which rebalances them over the replicas a load balancer has now.
  absl::Duration max_connection_age = absl::ZeroDuration();
  double max_connection_age_jitter = 0.1;
};

struct GatewayOptions {
  std::string listen_address = "0.0.0.0:6789";
  // This replica's name in stats (the binary: --instance, $POD_NAME or the
  // host name), so merged fleet output says where a figure comes from.
  std::string instance;
  int reactors = 0;  // 0 = one per core
  int backlog = 4096;
  ReactorOptions reactor;
  std::shared_ptr<FrameHandlerFactory> handler_factory;  // null = ReverseHandler
  // With backends, frames go to them instead of the handler (not with the
  // blocking model).
  UpstreamOptions upstream;
};

// The listen address, parsed (and resolved), or INVALID_ARGUMENT naming the
// first flag out of range, e.g. "--reactors must be 0..1024". The binary
// checks its flags with it and Gateway::Create checks its options with it
// (and binds the address it returns, so it is resolved once there).
absl::StatusOr<SocketAddress> Validate(const GatewayOptions& options);

}  // namespace gateway
