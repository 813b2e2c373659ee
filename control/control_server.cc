#include "control/control_server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "control/control_service.h"
#include "gateway/host_port.h"
#include "grpc/support/log.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace gateway::control {
namespace {

// Reads a PEM file and checks it holds a `what` block (its header ends with `marker`).
absl::StatusOr<std::string> ReadPemFile(const std::string& path, absl::string_view flag, absl::string_view what,
                                        absl::string_view marker) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (!absl::StrContains(text.str(), marker)) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " holds no PEM ", what));
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
  absl::StatusOr<std::string> cert =
      ReadPemFile(options.tls_cert_file, "--control_tls_cert", "certificate", "CERTIFICATE-----");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key =
      ReadPemFile(options.tls_key_file, "--control_tls_key", "private key", "PRIVATE KEY-----");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions ssl;
  ssl.pem_key_cert_pairs.push_back({*std::move(key), *std::move(cert)});
  if (!options.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca =
        ReadPemFile(options.tls_client_ca_file, "--control_tls_client_ca", "certificate", "CERTIFICATE-----");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

// gRPC logs its own multi-line error when a port cannot be added; while a
// server starts we report the failure ourselves, in one line.
std::atomic<int> quiet_starts{0};

void QuietableLog(gpr_log_func_args* args) {
  if (quiet_starts.load(std::memory_order_relaxed) > 0) return;
  std::fprintf(stderr, "%s %s:%d] %s\n", gpr_log_severity_string(args->severity), args->file, args->line,
               args->message);
}

}  // namespace

std::string DiagnoseListenFailure(const std::string& address, bool tls) {
  absl::StatusOr<HostPort> split = SplitHostPort(address);
  if (!split.ok()) return "cannot resolve the address";
  const std::string& host = split->host;
  const std::string& port = split->port;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* resolved = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &resolved) != 0) {
    return "cannot resolve the address";
  }
  std::string reason = tls ? "unusable TLS certificate or key (or they do not match)" : "cannot listen there";
  for (addrinfo* ai = resolved; ai != nullptr; ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const int rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
    const int error = errno;
    close(fd);
    if (rc != 0) {
      reason = std::strerror(error);
      break;
    }
  }
  freeaddrinfo(resolved);
  return reason;
}

std::unique_ptr<grpc::Server> BuildAndStartQuietly(grpc::ServerBuilder& builder) {
  static std::once_flag log_once;
  std::call_once(log_once, [] { gpr_set_log_function(QuietableLog); });
  quiet_starts.fetch_add(1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  quiet_starts.fetch_sub(1);
  return server;
}

void SetReadiness(grpc::Server& server, bool ready) {
  if (grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService()) {
    health->SetServingStatus("", ready);
    health->SetServingStatus(std::string(kReadinessService), ready);
    health->SetServingStatus(std::string(kLivenessService), true);
  }
}

absl::StatusOr<std::unique_ptr<ControlServer>> StartControlServer(Gateway* gateway,
                                                                  const ControlServerOptions& options) {
  if (!SplitHostPort(options.listen_address).ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("control address must be host:port, got \"", options.listen_address, "\""));
  }
  if (options.watch_queue_capacity == 0) return absl::InvalidArgumentError("watch queue capacity must be > 0");
  if (options.max_watchers < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max_watchers must be >= 0, got ", options.max_watchers));
  }
  if (options.watch_queue_bytes < kMinWatchQueueBytes) {
    return absl::InvalidArgumentError(absl::StrCat("--watch_queue_bytes must be at least ", kMinWatchQueueBytes,
                                                   ", got ", options.watch_queue_bytes));
  }
  if (!(options.watch_events_per_sec >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--watch_events_per_sec must be >= 0, got ", options.watch_events_per_sec));
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeCredentials(options);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<ControlServer> server(new ControlServer());
  WatchLimits watch_limits;
  watch_limits.max_watchers = options.max_watchers;
  watch_limits.queue_events = options.watch_queue_capacity;
  watch_limits.queue_bytes = options.watch_queue_bytes;
  watch_limits.events_per_sec = options.watch_events_per_sec;
  server->service_ = std::make_unique<GatewayControlService>(gateway, watch_limits);
  // Both are process-wide switches read by every ServerBuilder built after them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default, which would let a second gateway share
  // (and silently split) a busy control port instead of failing.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(options.listen_address, *credentials, &server->port_);
  builder.RegisterService(server->service_.get());
  server->server_ = BuildAndStartQuietly(builder);
  if (server->server_ == nullptr || server->port_ == 0) {
    if (server->server_ != nullptr) server->server_->Shutdown();
    server->service_->StopPump();
    return absl::UnavailableError(
        absl::StrCat("cannot serve the control plane on ", options.listen_address, ": ",
                     DiagnoseListenFailure(options.listen_address, !options.tls_cert_file.empty())));
  }
  SetReadiness(*server->server_, true);
  return server;
}

ControlServer::~ControlServer() { Shutdown(absl::ZeroDuration()); }

void ControlServer::SetReady(bool ready) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!stopped_ && server_ != nullptr) SetReadiness(*server_, ready);
}

void ControlServer::Shutdown(absl::Duration deadline) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopped_ || server_ == nullptr) return;
  stopped_ = true;
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(false);  // every service, liveness too: we are going
  }
  service_->EndWatches();
  server_->Shutdown(absl::ToChronoTime(absl::Now() + deadline));
  server_->Wait();
  service_->StopPump();
}

}  // namespace gateway::control
