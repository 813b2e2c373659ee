// grpc.health.v1.Health/Check through a generic stub (this build has the
// health messages but no generated service stub for them). Links against
// grpc++ and the grpc_health_proto objects (gateway_control brings both).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpc/health/v1/health.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/impl/codegen/proto_utils.h"  // SerializationTraits for protobuf messages

namespace gateway::testing {

// The status of `service` ("" = the server as a whole): SERVING is 1,
// NOT_SERVING 2; NOT_FOUND for a service the server does not know,
// UNAVAILABLE when it cannot be reached.
inline absl::StatusOr<int> HealthCheck(const std::shared_ptr<grpc::Channel>& channel, const std::string& service = "") {
  grpc::TemplatedGenericStub<grpc::health::v1::HealthCheckRequest, grpc::health::v1::HealthCheckResponse> stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status;
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  const bool got = cq.Next(&tag, &ok);
  cq.Shutdown();
  void* drained_tag = nullptr;
  bool drained_ok = false;
  while (cq.Next(&drained_tag, &drained_ok)) {
  }
  if (!got || !ok) return absl::InternalError("completion queue failed");
  if (status.error_code() == grpc::StatusCode::NOT_FOUND) return absl::NotFoundError(status.error_message());
  if (!status.ok()) return absl::UnavailableError(status.error_message());
  return static_cast<int>(response.status());
}

inline constexpr int kServing = grpc::health::v1::HealthCheckResponse::SERVING;
inline constexpr int kNotServing = grpc::health::v1::HealthCheckResponse::NOT_SERVING;

}  // namespace gateway::testing
