#include "gateway/types.h"

namespace gateway {

absl::string_view TriggerModeName(TriggerMode mode) { return mode == TriggerMode::kEdge ? "edge" : "level"; }

bool AbslParseFlag(absl::string_view text, TriggerMode* mode, std::string* error) {
  if (text == "edge" || text == "et") {
    *mode = TriggerMode::kEdge;
    return true;
  }
  if (text == "level" || text == "lt") {
    *mode = TriggerMode::kLevel;
    return true;
  }
  *error = "expected 'edge' or 'level'";
  return false;
}

std::string AbslUnparseFlag(TriggerMode mode) { return std::string(TriggerModeName(mode)); }

absl::string_view IoModelName(IoModel model) {
  switch (model) {
    case IoModel::kSelect: return "select";
    case IoModel::kPoll: return "poll";
    case IoModel::kEpoll: return "epoll";
    case IoModel::kIoUring: return "io_uring";
    case IoModel::kBlocking: return "blocking";
    case IoModel::kSignal: return "signal";
  }
  return "unknown";
}

bool IsLiveSwitchable(IoModel model) {
  return model == IoModel::kSelect || model == IoModel::kPoll || model == IoModel::kEpoll || model == IoModel::kIoUring;
}

bool AbslParseFlag(absl::string_view text, IoModel* model, std::string* error) {
  for (int i = 0; i < kNumIoModels; ++i) {
    const IoModel candidate = static_cast<IoModel>(i);
    if (text == IoModelName(candidate)) {
      *model = candidate;
      return true;
    }
  }
  if (text == "uring" || text == "iouring") {
    *model = IoModel::kIoUring;
    return true;
  }
  *error = "expected one of select, poll, epoll, io_uring, blocking, signal";
  return false;
}

std::string AbslUnparseFlag(IoModel model) { return std::string(IoModelName(model)); }

absl::string_view ConnectionStateName(ConnectionState state) {
  switch (state) {
    case ConnectionState::kAccept: return "accept";
    case ConnectionState::kRead: return "read";
    case ConnectionState::kProcess: return "process";
    case ConnectionState::kWrite: return "write";
    case ConnectionState::kClosing: return "closing";
  }
  return "unknown";
}

absl::string_view CloseReasonName(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed: return "peer_closed";
    case CloseReason::kProtocolError: return "protocol_error";
    case CloseReason::kIdleTimeout: return "idle_timeout";
    case CloseReason::kControlPlane: return "control_plane";
    case CloseReason::kReset: return "reset";
    case CloseReason::kMaxConnections: return "max_connections";
    case CloseReason::kShutdown: return "shutdown";
    case CloseReason::kError: return "error";
    case CloseReason::kFrameTimeout: return "frame_timeout";
    case CloseReason::kSelectFdLimit: return "select_fd_limit";
    case CloseReason::kUpstreamError: return "upstream_error";
    case CloseReason::kMaxConnectionAge: return "max_connection_age";
    case CloseReason::kDrained: return "drained";
  }
  return "unknown";
}

}  // namespace gateway
