// Small value types shared by the data plane and the control plane: trigger
// mode, connection state, close reasons, and the per-connection snapshot.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway {

enum class TriggerMode : uint8_t { kLevel, kEdge };

absl::string_view TriggerModeName(TriggerMode mode);  // "level" / "edge"

// Flag support, so --trigger_mode=edge|level parses with absl::Flag.
bool AbslParseFlag(absl::string_view text, TriggerMode* mode, std::string* error);
std::string AbslUnparseFlag(TriggerMode mode);

// The IO models the data plane can run on. select, poll, epoll and io_uring
// are back-ends of the reactors, switchable live; blocking (a thread per
// connection) and signal (O_ASYNC + F_SETSIG) are chosen at start only.
enum class IoModel : uint8_t { kSelect, kPoll, kEpoll, kIoUring, kBlocking, kSignal };
inline constexpr int kNumIoModels = 6;

absl::string_view IoModelName(IoModel model);  // "select", "poll", "epoll", "io_uring", "blocking", "signal"
// select, poll, epoll and io_uring: reactors can move to them while running.
bool IsLiveSwitchable(IoModel model);

bool AbslParseFlag(absl::string_view text, IoModel* model, std::string* error);
std::string AbslUnparseFlag(IoModel model);

// The per-connection state machine: accept -> read -> process -> write -> read,
// and closing. WRITE also covers a connection paused by backpressure.
enum class ConnectionState : uint8_t { kAccept, kRead, kProcess, kWrite, kClosing };
inline constexpr int kNumConnectionStates = 5;

absl::string_view ConnectionStateName(ConnectionState state);  // "read", ...

// How a connection closes: after delivering the responses it owes (then
// EOF), or at once.
enum class CloseMode { kFlush, kForce };

// Why a connection was closed; each has a metrics label.
enum class CloseReason : uint8_t {
  kPeerClosed,      // FIN from the client, all responses delivered
  kProtocolError,   // malformed header, earlier responses delivered first
  kIdleTimeout,     // no traffic for --idle_timeout
  kControlPlane,    // CloseConnection RPC
  kReset,           // ECONNRESET / EPIPE / EPOLLERR from the peer
  kMaxConnections,  // accepted over --max_connections and closed at once
  kShutdown,        // gateway draining on SIGTERM
  kError,           // any other socket error, or out of memory
  kFrameTimeout,    // a frame begun was not complete within --frame_timeout
  kSelectFdLimit,   // accepted in select mode on an fd >= FD_SETSIZE (1024), closed at once
  kUpstreamError,   // --upstream_error=close: a backend failed a request; earlier responses delivered first
  kMaxConnectionAge,  // older than --max_connection_age: closed at a frame boundary, responses delivered
  kDrained,           // DrainConnections: closed at a frame boundary, responses delivered
};
inline constexpr int kNumCloseReasons = 13;

absl::string_view CloseReasonName(CloseReason reason);  // "peer_closed", ...

// A copy of one connection's state, taken on its reactor's thread.
struct ConnectionInfo {
  int fd = -1;
  uint64_t id = 0;   // unique for the process lifetime, unlike fd
  std::string peer;  // "ip:port"
  ConnectionState state = ConnectionState::kAccept;
  TriggerMode trigger_mode = TriggerMode::kEdge;  // how its back-end reports readiness
  IoModel io_model = IoModel::kEpoll;
  int reactor = 0;
  // The frame being read: bytes of it buffered, and bytes still needed.
  uint64_t have_read = 0;
  uint64_t need_read = 0;
  // The output queued since the connection was last fully flushed: bytes of it
  // written, and bytes still to write.
  uint64_t have_write = 0;
  uint64_t need_write = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  uint64_t frames_in = 0;
  uint64_t frames_out = 0;
  // Upstream mode: requests of this client sent to (or queued for) a backend
  // and not yet answered.
  uint64_t upstream_inflight = 0;
  absl::Time opened_at;
  absl::Time last_active_at;
};

}  // namespace gateway
