#include "control/control_server.h"

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/control_service.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace gateway::control {
namespace {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view flag, absl::string_view marker) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), marker)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " has no PEM ", marker, " block"));
  }
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(const ControlServerOptions& options) {
  const bool want_tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (!want_tls) {
    if (!options.tls_client_ca_file.empty()) {
      return absl::InvalidArgumentError("--control_tls_client_ca needs --control_tls_cert and --control_tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
    return absl::InvalidArgumentError("--control_tls_cert and --control_tls_key go together");
  }
  absl::StatusOr<std::string> cert = ReadPemFile(options.tls_cert_file, "--control_tls_cert", "CERTIFICATE-----");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadPemFile(options.tls_key_file, "--control_tls_key", "PRIVATE KEY-----");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  if (!options.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPemFile(options.tls_client_ca_file, "--control_tls_client_ca", "CERTIFICATE-----");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ControlServer>> StartControlServer(Gateway* gateway,
                                                                  const ControlServerOptions& options) {
  if (options.listen_address.empty() || !absl::StrContains(options.listen_address, ':')) {
    return absl::InvalidArgumentError(
        absl::StrCat("control address must be host:port, got \"", options.listen_address, "\""));
  }
  if (options.watch_queue_capacity == 0) return absl::InvalidArgumentError("watch queue capacity must be > 0");
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeCredentials(options);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<ControlServer> server(new ControlServer());
  server->service_ = std::make_unique<GatewayControlService>(gateway, options.watch_queue_capacity);
  // Both are process-wide switches read by every ServerBuilder built after them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen_address, *credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = builder.BuildAndStart();
  if (server->server_ == nullptr || server->port_ == 0) {
    if (server->server_ != nullptr) server->server_->Shutdown();
    server->service_->StopPump();
    return absl::UnavailableError(absl::StrCat("cannot serve the control plane on ", options.listen_address,
                                               ": address in use or not local, or unusable TLS certificate/key"));
  }
  return server;
}

ControlServer::~ControlServer() { Shutdown(absl::ZeroDuration()); }

void ControlServer::Shutdown(absl::Duration deadline) {
  absl::MutexLock lock(&mu_);
  if (stopped_ || server_ == nullptr) return;
  stopped_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);
  }
  service_->EndWatches();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  server_->Wait();
  service_->StopPump();
}

}  // namespace gateway::control
