// Pod: the real gateway binary standing in for one Kubernetes pod, on its own
// loopback address (127.0.0.N) with the data, control and health ports every
// pod shares, as pods share container ports. The harness reads its readiness
// (grpc.health.v1 "readiness" on --health_listen, what a readinessProbe
// asks) and its connection count (GetStats on the control plane).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "bench/targets.h"
#include "grpcpp/channel.h"
#include "tests/support/subprocess.h"

namespace gateway::testing {

struct PodPorts {
  int data = 0;
  int control = 0;
  int health = 0;
};

// Three ports free on every address at once (bound on 0.0.0.0, then released).
absl::StatusOr<PodPorts> PickPodPorts();

// Thread-compatible.
class Pod {
 public:
  // Starts `binary` on `ip` with the shared `ports` and `flags` added.
  static absl::StatusOr<std::unique_ptr<Pod>> Start(const std::string& binary, const std::string& ip,
                                                    const PodPorts& ports, const std::vector<std::string>& flags);

  const std::string& ip() const { return ip_; }
  // What a client connects to: "ip:data_port".
  const bench::Endpoint& endpoint() const { return endpoint_; }
  // Polls readiness until SERVING; DEADLINE_EXCEEDED (with the log) if not by `deadline`.
  absl::Status WaitReady(absl::Time deadline);
  // GetStats().active_connections.
  absl::StatusOr<int64_t> ActiveConnections();
  // SIGTERM, as the kubelet sends it; remembers when.
  void Terminate();
  absl::Time terminated_at() const { return terminated_at_; }
  // The exit status once it has exited (nullopt if not by `deadline`), and
  // when it exited.
  std::optional<int> WaitExit(absl::Time deadline);
  absl::Time exited_at() const { return exited_at_; }
  bool Running() { return process_->Running(); }
  std::string Log() const { return process_->Log(); }

 private:
  Pod(std::string ip, std::unique_ptr<Subprocess> process, bench::Endpoint endpoint, const PodPorts& ports);

  const std::string ip_;
  std::unique_ptr<Subprocess> process_;
  const bench::Endpoint endpoint_;
  std::shared_ptr<grpc::Channel> control_;
  std::shared_ptr<grpc::Channel> health_;
  absl::Time terminated_at_ = absl::InfiniteFuture();
  absl::Time exited_at_ = absl::InfiniteFuture();
};

}  // namespace gateway::testing
