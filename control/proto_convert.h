// Conversions between the data plane's types (gateway/types.h) and the
// control-plane API's messages (gateway.v1), the absl::Status -> grpc::Status
// mapping used at the RPC edge, and the opaque ListConnections page token.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/connection_observer.h"
#include "gateway/types.h"
#include "gateway/v1/control.pb.h"
#include "google/protobuf/duration.pb.h"
#include "grpcpp/support/status.h"

namespace gateway::control {

// Maps codes one to one (absl and gRPC share their numbering) and keeps the message.
grpc::Status ToGrpcStatus(const absl::Status& status);

v1::TriggerMode ToProto(TriggerMode mode);
// INVALID_ARGUMENT for UNSPECIFIED and values outside the enum.
absl::StatusOr<TriggerMode> FromProto(v1::TriggerMode mode);

v1::IoModel ToProto(IoModel model);
// INVALID_ARGUMENT for UNSPECIFIED and values outside the enum.
absl::StatusOr<IoModel> FromProto(v1::IoModel model);

v1::ConnectionState ToProto(ConnectionState state);
// nullopt for UNSPECIFIED (no filter); INVALID_ARGUMENT outside the enum.
absl::StatusOr<std::optional<ConnectionState>> StateFilterFromProto(int state);

v1::CloseReason ToProto(CloseReason reason);

void ToProto(absl::Time time, google::protobuf::Timestamp* out);
void ToProto(absl::Duration duration, google::protobuf::Duration* out);
void ToProto(const ConnectionInfo& info, v1::Connection* out);
void ToProto(const ConnectionEvent& event, v1::ConnectionEvent* out);

// The position after which the next page starts, and the filter it belongs to.
struct PageCursor {
  std::optional<ConnectionState> state;
  int after_fd = -1;
};
std::string EncodePageToken(const PageCursor& cursor);
// INVALID_ARGUMENT if `token` was not made by EncodePageToken.
absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token);

}  // namespace gateway::control
