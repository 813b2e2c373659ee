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

v1::TriggerMode ToProto(TriggerMode mode) {
  return mode == TriggerMode::kEdge ? v1::TRIGGER_MODE_EDGE : v1::TRIGGER_MODE_LEVEL;
}

absl::StatusOr<TriggerMode> FromProto(v1::TriggerMode mode) {
  switch (mode) {
    case v1::TRIGGER_MODE_LEVEL: return TriggerMode::kLevel;
    case v1::TRIGGER_MODE_EDGE: return TriggerMode::kEdge;
    default: break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("mode must be TRIGGER_MODE_LEVEL or TRIGGER_MODE_EDGE, got ", static_cast<int>(mode)));
}

v1::IoModel ToProto(IoModel model) {
  switch (model) {
    case IoModel::kSelect: return v1::IO_MODEL_SELECT;
    case IoModel::kPoll: return v1::IO_MODEL_POLL;
    case IoModel::kEpoll: return v1::IO_MODEL_EPOLL;
    case IoModel::kIoUring: return v1::IO_MODEL_IO_URING;
    case IoModel::kBlocking: return v1::IO_MODEL_BLOCKING;
    case IoModel::kSignal: return v1::IO_MODEL_SIGNAL;
  }
  return v1::IO_MODEL_UNSPECIFIED;
}

absl::StatusOr<IoModel> FromProto(v1::IoModel model) {
  switch (model) {
    case v1::IO_MODEL_SELECT: return IoModel::kSelect;
    case v1::IO_MODEL_POLL: return IoModel::kPoll;
    case v1::IO_MODEL_EPOLL: return IoModel::kEpoll;
    case v1::IO_MODEL_IO_URING: return IoModel::kIoUring;
    case v1::IO_MODEL_BLOCKING: return IoModel::kBlocking;
    case v1::IO_MODEL_SIGNAL: return IoModel::kSignal;
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "model must be one of IO_MODEL_SELECT, IO_MODEL_POLL, IO_MODEL_EPOLL, IO_MODEL_IO_URING, IO_MODEL_BLOCKING or "
      "IO_MODEL_SIGNAL, got ",
      static_cast<int>(model)));
}

v1::ConnectionState ToProto(ConnectionState state) {
  switch (state) {
    case ConnectionState::kAccept: return v1::CONNECTION_STATE_ACCEPT;
    case ConnectionState::kRead: return v1::CONNECTION_STATE_READ;
    case ConnectionState::kProcess: return v1::CONNECTION_STATE_PROCESS;
    case ConnectionState::kWrite: return v1::CONNECTION_STATE_WRITE;
    case ConnectionState::kClosing: return v1::CONNECTION_STATE_CLOSING;
  }
  return v1::CONNECTION_STATE_UNSPECIFIED;
}

absl::StatusOr<std::optional<ConnectionState>> StateFilterFromProto(int state) {
  switch (state) {
    case v1::CONNECTION_STATE_UNSPECIFIED: return std::optional<ConnectionState>();
    case v1::CONNECTION_STATE_ACCEPT: return std::optional<ConnectionState>(ConnectionState::kAccept);
    case v1::CONNECTION_STATE_READ: return std::optional<ConnectionState>(ConnectionState::kRead);
    case v1::CONNECTION_STATE_PROCESS: return std::optional<ConnectionState>(ConnectionState::kProcess);
    case v1::CONNECTION_STATE_WRITE: return std::optional<ConnectionState>(ConnectionState::kWrite);
    case v1::CONNECTION_STATE_CLOSING: return std::optional<ConnectionState>(ConnectionState::kClosing);
    default: break;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown connection state ", state));
}

v1::CloseReason ToProto(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed: return v1::CLOSE_REASON_PEER_CLOSED;
    case CloseReason::kProtocolError: return v1::CLOSE_REASON_PROTOCOL_ERROR;
    case CloseReason::kIdleTimeout: return v1::CLOSE_REASON_IDLE_TIMEOUT;
    case CloseReason::kControlPlane: return v1::CLOSE_REASON_CONTROL_PLANE;
    case CloseReason::kReset: return v1::CLOSE_REASON_RESET;
    case CloseReason::kMaxConnections: return v1::CLOSE_REASON_MAX_CONNECTIONS;
    case CloseReason::kShutdown: return v1::CLOSE_REASON_SHUTDOWN;
    case CloseReason::kError: return v1::CLOSE_REASON_ERROR;
    case CloseReason::kFrameTimeout: return v1::CLOSE_REASON_FRAME_TIMEOUT;
    case CloseReason::kSelectFdLimit: return v1::CLOSE_REASON_SELECT_FD_LIMIT;
    case CloseReason::kUpstreamError: return v1::CLOSE_REASON_UPSTREAM_ERROR;
    case CloseReason::kMaxConnectionAge: return v1::CLOSE_REASON_MAX_CONNECTION_AGE;
    case CloseReason::kDrained: return v1::CLOSE_REASON_DRAINED;
  }
  return v1::CLOSE_REASON_UNSPECIFIED;
}

void ToProto(absl::Time time, google::protobuf::Timestamp* out) {
  const int64_t seconds = absl::ToUnixSeconds(time);  // rounds down
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
}

void ToProto(absl::Duration duration, google::protobuf::Duration* out) {
  const int64_t seconds = absl::ToInt64Seconds(duration);  // truncates toward zero, as Duration wants
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(duration - absl::Seconds(seconds))));
}

void ToProto(const ConnectionInfo& info, v1::Connection* out) {
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
  out->set_io_model(ToProto(info.io_model));
  out->set_upstream_inflight(info.upstream_inflight);
}

void ToProto(const ConnectionEvent& event, v1::ConnectionEvent* out) {
  switch (event.type) {
    case ConnectionEvent::Type::kOpened: out->set_type(v1::ConnectionEvent::TYPE_OPENED); break;
    case ConnectionEvent::Type::kStateChanged:
      out->set_type(v1::ConnectionEvent::TYPE_STATE_CHANGED);
      out->set_old_state(ToProto(event.old_state));
      break;
    case ConnectionEvent::Type::kClosed:
      out->set_type(v1::ConnectionEvent::TYPE_CLOSED);
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
