// Connection lifecycle events, for the control plane's watch stream.
#pragma once

#include "gateway/types.h"

namespace gateway {

struct ConnectionEvent {
  enum class Type { kOpened, kStateChanged, kClosed };
  Type type = Type::kOpened;
  ConnectionInfo connection;                             // the state after the event
  ConnectionState old_state = ConnectionState::kAccept;  // kStateChanged only
  CloseReason reason = CloseReason::kPeerClosed;         // kClosed only
  absl::Time time;
};

// Receives events on reactor threads, from several reactors at once.
// OnEvent must be thread-safe and must not block: queue and return.
class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;
  // State changes come several per request; observers that do not want them
  // cost the data plane nothing for them.
  virtual bool WantsStateChanges() const = 0;
  virtual void OnEvent(const ConnectionEvent& event) = 0;
};

}  // namespace gateway
