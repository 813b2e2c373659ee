#include "tests/rollout/pod.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "tests/support/health_check.h"

namespace gateway::testing {
namespace {

constexpr auto kRpcTimeout = std::chrono::seconds(2);

absl::StatusOr<int> BindAnyAddress(int* fd) {
  *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t len = sizeof addr;
  if (*fd < 0 || bind(*fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(*fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return absl::InternalError("cannot bind 0.0.0.0:0");
  }
  return ntohs(addr.sin_port);
}

}  // namespace

absl::StatusOr<PodPorts> PickPodPorts() {
  int fds[3] = {-1, -1, -1};
  int ports[3] = {};
  absl::Status status;
  for (int i = 0; i < 3 && status.ok(); ++i) {
    absl::StatusOr<int> port = BindAnyAddress(&fds[i]);
    if (port.ok()) ports[i] = *port;
    status = port.status();
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  if (!status.ok()) return status;
  return PodPorts{ports[0], ports[1], ports[2]};
}

Pod::Pod(std::string ip, std::unique_ptr<Subprocess> process, bench::Endpoint endpoint, const PodPorts& ports)
    : ip_(std::move(ip)), process_(std::move(process)), endpoint_(std::move(endpoint)) {
  control_ = grpc::CreateChannel(absl::StrCat(ip_, ":", ports.control), grpc::InsecureChannelCredentials());
  health_ = grpc::CreateChannel(absl::StrCat(ip_, ":", ports.health), grpc::InsecureChannelCredentials());
}

absl::StatusOr<std::unique_ptr<Pod>> Pod::Start(const std::string& binary, const std::string& ip, const PodPorts& ports,
                                                const std::vector<std::string>& flags) {
  absl::StatusOr<bench::Endpoint> endpoint = bench::ResolveEndpoint(absl::StrCat(ip, ":", ports.data));
  if (!endpoint.ok()) return endpoint.status();
  std::vector<std::string> argv = {binary,
                                   absl::StrCat("--listen=", ip, ":", ports.data),
                                   "--reactors=1",
                                   absl::StrCat("--control_listen=", ip, ":", ports.control),
                                   absl::StrCat("--health_listen=", ip, ":", ports.health),
                                   "--metrics_listen=",
                                   absl::StrCat("--instance=pod-", ip)};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> process = Subprocess::Start(argv);
  if (!process.ok()) return process.status();
  return std::unique_ptr<Pod>(new Pod(ip, *std::move(process), *std::move(endpoint), ports));
}

absl::Status Pod::WaitReady(absl::Time deadline) {
  // The ready line first: a health call refused before the listener is up
  // would put the channel into reconnect backoff (seconds).
  if (!WaitForReadyLine(*process_, deadline).has_value()) {
    return absl::DeadlineExceededError(absl::StrCat(ip_, " printed no ready line; log:\n", Log()));
  }
  absl::Status last = absl::UnavailableError("not asked yet");
  while (absl::Now() < deadline && process_->Running()) {
    absl::StatusOr<int> serving = HealthCheck(health_, "readiness");
    if (serving.ok() && *serving == 1 /* SERVING */) return absl::OkStatus();
    last = serving.ok() ? absl::UnavailableError(absl::StrCat("readiness status ", *serving)) : serving.status();
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat(ip_, " not ready (", last.message(), "); log:\n", Log()));
}

absl::StatusOr<int64_t> Pod::ActiveConnections() {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
  v1::Stats stats;
  const grpc::Status status = v1::GatewayControl::NewStub(control_)->GetStats(&context, v1::GetStatsRequest(), &stats);
  if (!status.ok()) return absl::UnavailableError(absl::StrCat(ip_, ": GetStats: ", status.error_message()));
  return stats.active_connections();
}

void Pod::Terminate() {
  terminated_at_ = absl::Now();
  kill(process_->pid(), SIGTERM);
}

std::optional<int> Pod::WaitExit(absl::Time deadline) {
  std::optional<int> code = process_->Wait(deadline);
  if (code.has_value() && exited_at_ == absl::InfiniteFuture()) exited_at_ = absl::Now();
  return code;
}

}  // namespace gateway::testing
