// GatewayControlService's upstream-mode methods: validate, hand the change
// to the gateway (which applies it on every reactor), answer with the
// backend's picture from the gateway's reply.
#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "control/backend_convert.h"
#include "control/backend_watch.h"
#include "control/control_service.h"
#include "control/pending_call.h"
#include "control/proto_convert.h"

namespace gateway::control {
namespace {

absl::Status CheckAddress(const std::string& address) {
  if (address.empty()) return absl::InvalidArgumentError("address must be set: the backend's host:port, as listed");
  return absl::OkStatus();
}

// How long a drain or removal may wait: the request's timeout; else the
// call's deadline less a tenth (at most a second), so the answer arrives
// before the client gives up; else kDefaultBackendTimeout.
absl::StatusOr<absl::Duration> BackendTimeout(const grpc::CallbackServerContext& context, bool has_timeout,
                                              const google::protobuf::Duration& timeout) {
  if (has_timeout) {
    if (timeout.seconds() < 0 || timeout.nanos() < 0 || timeout.nanos() > 999'999'999) {
      return absl::InvalidArgumentError(
          absl::StrCat("timeout must be >= 0, got ", timeout.seconds(), "s ", timeout.nanos(), "ns"));
    }
    const absl::Duration requested = absl::Seconds(timeout.seconds()) + absl::Nanoseconds(timeout.nanos());
    if (requested > kMaxBackendTimeout) {
      return absl::InvalidArgumentError(absl::StrCat("timeout must be at most ",
                                                     absl::FormatDuration(kMaxBackendTimeout), ", got ",
                                                     absl::FormatDuration(requested)));
    }
    return requested;
  }
  const std::chrono::system_clock::time_point deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return kDefaultBackendTimeout;
  const absl::Duration remaining = absl::FromChrono(deadline) - absl::Now();
  const absl::Duration margin = std::min(remaining / 10, absl::Seconds(1));
  return std::clamp(remaining - margin, absl::ZeroDuration(), kMaxBackendTimeout);
}

// Answers `call` with the backend's picture (or the gateway's error).
Gateway::Done<BackendInfo> AnswerWithBackend(std::shared_ptr<PendingCall> call, v1::Backend* response) {
  return [call = std::move(call), response](absl::StatusOr<BackendInfo> info) {
    call->Answer(info.status(), [&] { ToProto(*info, response); });
  };
}

}  // namespace

grpc::ServerUnaryReactor* GatewayControlService::ListBackends(grpc::CallbackServerContext* context,
                                                              const v1::ListBackendsRequest* /*request*/,
                                                              v1::ListBackendsResponse* response) {
  absl::StatusOr<std::vector<BackendInfo>> backends = gateway_->ListBackends();
  if (!backends.ok()) return FinishWith(context, backends.status());
  response->mutable_backends()->Reserve(static_cast<int>(backends->size()));
  for (const BackendInfo& info : *backends) ToProto(info, response->add_backends());
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayControlService::GetBackend(grpc::CallbackServerContext* context,
                                                            const v1::GetBackendRequest* request,
                                                            v1::Backend* response) {
  if (absl::Status status = CheckAddress(request->address()); !status.ok()) return FinishWith(context, status);
  absl::StatusOr<BackendInfo> info = gateway_->GetBackend(request->address());
  if (!info.ok()) return FinishWith(context, info.status());
  ToProto(*info, response);
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayControlService::AddBackend(grpc::CallbackServerContext* context,
                                                            const v1::AddBackendRequest* request,
                                                            v1::Backend* response) {
  if (absl::Status status = CheckAddress(request->address()); !status.ok()) return FinishWith(context, status);
  BackendSpec spec{request->address(), request->weight() == 0 ? BackendSpec().weight : request->weight()};
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->AddBackend(std::move(spec), AnswerWithBackend(call, response));
  return call.get();
}

grpc::ServerUnaryReactor* GatewayControlService::RemoveBackend(grpc::CallbackServerContext* context,
                                                               const v1::RemoveBackendRequest* request,
                                                               v1::Backend* response) {
  if (absl::Status status = CheckAddress(request->address()); !status.ok()) return FinishWith(context, status);
  absl::StatusOr<absl::Duration> timeout = BackendTimeout(*context, request->has_timeout(), request->timeout());
  if (!timeout.ok()) return FinishWith(context, timeout.status());
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->RemoveBackend(request->address(), *timeout, AnswerWithBackend(call, response));
  return call.get();
}

grpc::ServerUnaryReactor* GatewayControlService::DrainBackend(grpc::CallbackServerContext* context,
                                                              const v1::DrainBackendRequest* request,
                                                              v1::Backend* response) {
  if (absl::Status status = CheckAddress(request->address()); !status.ok()) return FinishWith(context, status);
  absl::StatusOr<absl::Duration> timeout = BackendTimeout(*context, request->has_timeout(), request->timeout());
  if (!timeout.ok()) return FinishWith(context, timeout.status());
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->DrainBackend(request->address(), *timeout, AnswerWithBackend(call, response));
  return call.get();
}

grpc::ServerUnaryReactor* GatewayControlService::UndrainBackend(grpc::CallbackServerContext* context,
                                                                const v1::UndrainBackendRequest* request,
                                                                v1::Backend* response) {
  if (absl::Status status = CheckAddress(request->address()); !status.ok()) return FinishWith(context, status);
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->UndrainBackend(request->address(), AnswerWithBackend(call, response));
  return call.get();
}

grpc::ServerUnaryReactor* GatewayControlService::SetBackendWeight(grpc::CallbackServerContext* context,
                                                                  const v1::SetBackendWeightRequest* request,
                                                                  v1::Backend* response) {
  if (absl::Status status = CheckAddress(request->address()); !status.ok()) return FinishWith(context, status);
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->SetBackendWeight(request->address(), request->weight(), AnswerWithBackend(call, response));
  return call.get();
}

grpc::ServerWriteReactor<v1::BackendEvent>* GatewayControlService::WatchBackends(
    grpc::CallbackServerContext* /*context*/, const v1::WatchBackendsRequest* /*request*/) {
  return new BackendWatchStream(gateway_, &pump_, watches_, watch_limits_);
}

}  // namespace gateway::control
