// The control-plane gRPC server: GatewayControl, server reflection and the
// standard grpc.health.v1.Health service on one port, in plaintext or TLS
// (optionally verifying client certificates).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace gateway::control {

struct ControlServerOptions {
  std::string listen_address = "127.0.0.1:50051";  // host:port; port 0 picks a free one
  // PEM files. With cert and key the server speaks TLS only; with a client CA
  // too, clients must present a certificate signed by it.
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  size_t watch_queue_capacity = 4096;  // events buffered per watcher before dropping
  // Watch streams (WatchConnections and WatchBackends) open at once; more end at once with
  // RESOURCE_EXHAUSTED. 0 = no limit.
  int max_watchers = 32;
  // Estimated bytes buffered per watcher before dropping (see WatchSession);
  // at least kMinWatchQueueBytes.
  size_t watch_queue_bytes = 256 * 1024;
  // Events sent per second over all watchers together (what sending costs the
  // cores the reactors share); beyond it watchers' queues fill and drop. 0 =
  // no limit.
  double watch_events_per_sec = 10000;
};

inline constexpr size_t kMinWatchQueueBytes = 1024;

class GatewayControlService;

// Thread-safe. Does not own the gateway, which must outlive it.
class ControlServer {
 public:
  ~ControlServer();  // Shutdown(zero)
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  int port() const { return port_; }
  // Readiness ("" and "readiness" in grpc.health.v1) goes NOT_SERVING when a
  // drain begins; liveness ("liveness") stays SERVING until Shutdown.
  void SetReady(bool ready);
  // Reports NOT_SERVING to health checks, ends watch streams cleanly (the
  // events already queued, then OK), and stops the server; calls still
  // running at `deadline` are cancelled. Idempotent; blocks until done.
  void Shutdown(absl::Duration deadline);

 private:
  friend absl::StatusOr<std::unique_ptr<ControlServer>> StartControlServer(Gateway* gateway,
                                                                           const ControlServerOptions& options);
  ControlServer() = default;

  int port_ = 0;
  std::unique_ptr<GatewayControlService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;         // std::mutex: TSan cannot see Debian's absl::Mutex
  bool stopped_ = false;  // guarded by mu_
};

// The grpc.health.v1 service names Kubernetes probes ask for; "" means
// readiness too (what a probe without a service name asks).
inline constexpr absl::string_view kReadinessService = "readiness";
inline constexpr absl::string_view kLivenessService = "liveness";

// Sets readiness ("" and "readiness") to `ready` and liveness to SERVING on
// `server`'s default health service.
void SetReadiness(grpc::Server& server, bool ready);
// BuildAndStart with gRPC's own multi-line bind errors silenced: the caller
// reports the failure in one line (DiagnoseListenFailure says why).
std::unique_ptr<grpc::Server> BuildAndStartQuietly(grpc::ServerBuilder& builder);
// Why `address` could not be served, found by trying to bind it ourselves.
std::string DiagnoseListenFailure(const std::string& address, bool tls);

// Starts serving `gateway` (which must have been started). Fails with a
// one-line status if the address is bad or busy or a TLS file is unusable.
absl::StatusOr<std::unique_ptr<ControlServer>> StartControlServer(Gateway* gateway,
                                                                  const ControlServerOptions& options);

}  // namespace gateway::control
