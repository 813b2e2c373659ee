// The health-only listener (--health_listen): plaintext grpc.health.v1 and
// nothing else, so Kubernetes' native gRPC probes (which present no client
// certificate) can reach it on the pod IP while the control plane stays on
// loopback or behind mTLS.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"

namespace gateway::control {

// Thread-safe.
class HealthServer {
 public:
  // Serves "" and "readiness" (SERVING until SetReady(false)) and
  // "liveness" (SERVING until Shutdown). Fails with a one-line status for a
  // bad or busy address.
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& address);
  ~HealthServer();  // Shutdown()
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  int port() const { return port_; }
  void SetReady(bool ready);
  // Every service NOT_SERVING, then the server stops. Idempotent.
  void Shutdown();

 private:
  HealthServer() = default;

  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::mutex mu_;
  bool stopped_ = false;  // guarded by mu_
};

}  // namespace gateway::control
