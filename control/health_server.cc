#include "control/health_server.h"

#include "absl/strings/str_cat.h"
#include "control/control_server.h"
#include "gateway/host_port.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace gateway::control {

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& address) {
  if (!SplitHostPort(address).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--health_listen must be host:port, got \"", address, "\""));
  }
  // Process-wide switches, as for the control plane; reflection lets grpcurl
  // and buf curl call Check here with no .proto at hand.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::unique_ptr<HealthServer> health(new HealthServer());
  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a busy port fails, as the control plane's does
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &health->port_);
  health->server_ = BuildAndStartQuietly(builder);
  if (health->server_ == nullptr || health->port_ == 0) {
    if (health->server_ != nullptr) health->server_->Shutdown();
    health->server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot serve health checks on ", address, ": ", DiagnoseListenFailure(address, /*tls=*/false)));
  }
  SetReadiness(*health->server_, true);
  return health;
}

HealthServer::~HealthServer() { Shutdown(); }

void HealthServer::SetReady(bool ready) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stopped_ && server_ != nullptr) SetReadiness(*server_, ready);
}

void HealthServer::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_ || server_ == nullptr) return;
  stopped_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  server_->Wait();
}

}  // namespace gateway::control
