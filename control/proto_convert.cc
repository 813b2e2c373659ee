#include "control/proto_convert.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace gateway::control {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

pb::TriggerMode ToProto(TriggerMode mode) {
  return mode == TriggerMode::kEdge ? pb::TRIGGER_MODE_EDGE : pb::TRIGGER_MODE_LEVEL;
}

absl::StatusOr<TriggerMode> FromProto(pb::TriggerMode mode) {
  switch (mode) {
    case pb::TRIGGER_MODE_LEVEL: return TriggerMode::kLevel;
    case pb::TRIGGER_MODE_EDGE: return TriggerMode::kEdge;
    default: break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("mode must be TRIGGER_MODE_LEVEL or TRIGGER_MODE_EDGE, got ", static_cast<int>(mode)));
}

pb::ConnectionState ToProto(ConnectionState state) {
  // The proto enum is the data plane's order shifted by one (0 = UNSPECIFIED).
  return static_cast<pb::ConnectionState>(static_cast<int>(state) + 1);
}

absl::StatusOr<std::optional<ConnectionState>> StateFilterFromProto(int state) {
  if (state == pb::CONNECTION_STATE_UNSPECIFIED) return std::optional<ConnectionState>();
  if (state < pb::CONNECTION_STATE_ACCEPT || state > pb::CONNECTION_STATE_CLOSING) {
    return absl::InvalidArgumentError(absl::StrCat("unknown connection state ", state));
  }
  return std::optional<ConnectionState>(static_cast<ConnectionState>(state - 1));
}

pb::CloseReason ToProto(CloseReason reason) {
  return static_cast<pb::CloseReason>(static_cast<int>(reason) + 1);
}

void ToProto(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(time);  // rounds down
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
}

void ToProto(const ConnectionInfo& info, pb::Connection* out) {
  out->set_fd(info.fd);
  out->set_id(info.id);
  out->set_peer(info.peer);
  out->set_state(ToProto(info.state));
  out->set_trigger_mode(ToProto(info.trigger_mode));
  out->set_reactor(info.reactor);
  out->set_have_read(info.have_read);
  out->set_need_read(info.need_read);
  out->set_have_write(info.have_write);
  out->set_need_write(info.need_write);
  out->set_bytes_in(info.bytes_in);
  out->set_bytes_out(info.bytes_out);
  out->set_frames_in(info.frames_in);
  out->set_frames_out(info.frames_out);
  ToProto(info.opened_at, out->mutable_opened_at());
  ToProto(info.last_active_at, out->mutable_last_active_at());
}

void ToProto(const ConnectionEvent& event, pb::ConnectionEvent* out) {
  switch (event.type) {
    case ConnectionEvent::Type::kOpened:
      out->set_type(pb::ConnectionEvent::TYPE_OPENED);
      break;
    case ConnectionEvent::Type::kStateChanged:
      out->set_type(pb::ConnectionEvent::TYPE_STATE_CHANGED);
      out->set_old_state(ToProto(event.old_state));
      break;
    case ConnectionEvent::Type::kClosed:
      out->set_type(pb::ConnectionEvent::TYPE_CLOSED);
      out->set_close_reason(ToProto(event.reason));
      break;
  }
  ToProto(event.connection, out->mutable_connection());
  ToProto(event.time, out->mutable_time());
}

// A token is web-safe base64 of "v1:<state filter or ->:<after_fd>", so it
// is opaque to clients yet cheap to check.
std::string EncodePageToken(const PageCursor& cursor) {
  const std::string state = cursor.state.has_value() ? absl::StrCat(static_cast<int>(*cursor.state)) : "-";
  return absl::WebSafeBase64Escape(absl::StrCat("v1:", state, ":", cursor.after_fd));
}

absl::StatusOr<PageCursor> DecodePageToken(absl::string_view token) {
  const absl::Status invalid = absl::InvalidArgumentError("invalid page_token: pass next_page_token unchanged");
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return invalid;
  std::vector<absl::string_view> parts = absl::StrSplit(raw, ':');
  if (parts.size() != 3 || parts[0] != "v1") return invalid;
  PageCursor cursor;
  if (parts[1] != "-") {
    int state = 0;
    if (!absl::SimpleAtoi(parts[1], &state) || state < 0 || state >= kNumConnectionStates) return invalid;
    cursor.state = static_cast<ConnectionState>(state);
  }
  if (!absl::SimpleAtoi(parts[2], &cursor.after_fd) || cursor.after_fd < 0) return invalid;
  return cursor;
}

}  // namespace gateway::control
