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
  }
  return "unknown";
}

}  // namespace gateway
