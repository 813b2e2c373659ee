// The WatchConnections stream: a gateway::ConnectionObserver that queues
// events from the reactors (and IO-model switches from the control plane)
// into a WatchSessionCore (bounded in events and in bytes; what does not fit
// is dropped and counted), the gRPC server-streaming reactor that writes
// them out one at a time, and the registry that caps how many watch streams
// (of every kind) are open at once. Reactor threads never call into gRPC for
// events: they queue and, when the stream is idle, hand it to the WatchPump,
// whose thread starts the write. Adding and removing a watcher does not
// block a gRPC thread either: the reactors' replies start the stream and
// free its slot.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "control/watch_session.h"
#include "gateway/connection_observer.h"
#include "gateway/gateway.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace gateway::control {

// Limits on watchers. Every watcher costs each reactor a lock and a copy per
// event it is sent, and holds up to `queue_bytes` (plus the one event being
// written) while it does not read. Sending costs the control plane's threads
// CPU per event, on the same cores as the reactors, and a client that does
// not read still takes events until its HTTP/2 window is full (megabytes with
// gRPC's default window sizing): `events_per_sec` bounds that cost.
struct WatchLimits {
  int max_watchers = 32;            // streams open at once; more end with RESOURCE_EXHAUSTED; 0 = no limit
  size_t queue_events = 4096;       // events queued per watcher before dropping
  size_t queue_bytes = 256 * 1024;  // estimated bytes queued per watcher before dropping (see WatchSession)
  double events_per_sec = 10000;    // writes started per second over all watchers; 0 = no limit
};

// What the registry reports on its streams (for GetStats and tests).
struct WatchStats {
  int open = 0;                    // streams open now
  uint64_t refused = 0;            // streams refused by max_watchers since start
  uint64_t queued_bytes = 0;       // queued now, over the open streams
  uint64_t peak_queued_bytes = 0;  // the most any one stream has held queued since start
  uint64_t dropped = 0;            // events dropped since start, over every stream
};

// What a WatchConnections session queues and writes (see WatchSessionCore).
struct ConnectionWatchTraits {
  struct Entry {
    ConnectionEvent event;                   // unless io_switch is set
    std::optional<IoModelSwitch> io_switch;  // an IO-model switch instead of a connection event
  };
  using Message = v1::ConnectionEvent;
  static size_t HeapBytes(const Entry& entry);
  static void ToMessage(const Entry& entry, v1::ConnectionEvent* out);
};

// One WatchConnections watcher: a ConnectionObserver whose events go into a
// WatchSessionCore. Thread-safe: OnEvent runs on reactor threads. An
// event's bytes are estimated as QueuedBytes(): its queue slot plus its peer
// string's length (the part of it on the heap once the string outgrows its
// inline buffer).
class WatchSession : public WatchSessionCore<ConnectionWatchTraits>, public ConnectionObserver {
 public:
  using Core = WatchSessionCore<ConnectionWatchTraits>;
  WatchSession(WatchPump* pump, bool state_changes, size_t max_events, size_t max_bytes)
      : Core(pump, max_events, max_bytes), state_changes_(state_changes) {}

  // The estimated bytes `event` takes in the queue.
  static size_t QueuedBytes(const ConnectionEvent& event);

  // ConnectionObserver: queue and return (or count it as dropped).
  bool WantsStateChanges() const override { return state_changes_; }
  void OnEvent(const ConnectionEvent& event) override;
  // Queues a switch like an event: same bounds, same drop-and-count.
  void OnIoModelSwitch(const IoModelSwitch& io_switch) override;

 private:
  const bool state_changes_;
};

class WatchRegistry;

// The gRPC reactor of one WatchConnections call; deletes itself in OnDone.
// gRPC-thread only (its session does the cross-thread work).
class WatchStream : public grpc::ServerWriteReactor<v1::ConnectionEvent> {
 public:
  // Takes a slot in `registry` and asks `gateway` to register a session
  // (without waiting: the reactors' reply starts the stream); on failure (no
  // slot, shutting down) ends the call with the error.
  WatchStream(Gateway* gateway, WatchPump* pump, std::shared_ptr<WatchRegistry> registry,
              const v1::WatchConnectionsRequest& request, const WatchLimits& limits);

  void OnSendInitialMetadataDone(bool ok) override { session_->OnWriteDone(ok); }
  void OnWriteDone(bool ok) override { session_->OnWriteDone(ok); }
  void OnCancel() override;
  void OnDone() override;

 private:
  Gateway* const gateway_;
  // Shared: the reactors' reply to OnDone's removal frees the slot, maybe
  // after the service is gone.
  const std::shared_ptr<WatchRegistry> registry_;
  std::shared_ptr<WatchSession> session_;
  bool observing_ = false;
};

// Thread-safe: the live watch streams of every kind, at most `max_watchers`
// of them (0 = no limit), so a shutdown can end them all, and the IO model
// last announced to them.
class WatchRegistry {
 public:
  WatchRegistry(int max_watchers, IoModel io_model) : max_watchers_(max_watchers), announced_model_(io_model) {}

  // Takes a slot for `session`. RESOURCE_EXHAUSTED when every slot is taken,
  // UNAVAILABLE once EndAll() has run: the caller must end its call with it.
  grpc::Status Add(std::shared_ptr<WatchWriter> session);
  // Frees the session's slot. Call once its stream is done.
  void Remove(const WatchWriter* session);
  // Ends every live stream cleanly (queued events first, then OK) and refuses new ones.
  void EndAll();
  WatchStats Stats() const;
  // Tells every live stream that the gateway now runs `model`, if that is
  // not the model last announced. Call from each successful SetIoModel's
  // reply: the gateway runs switches, and their replies, one at a time in
  // order, so the model last announced is the one each switch started from.
  void IoModelSet(IoModel model, absl::Duration duration);

 private:
  const int max_watchers_;
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<WatchWriter>> sessions_;  // guarded by mu_
  bool ended_ = false;                                  // guarded by mu_
  uint64_t refused_ = 0;                                // guarded by mu_
  // Of the streams already removed; guarded by mu_.
  uint64_t dropped_removed_ = 0;
  uint64_t peak_removed_ = 0;
  IoModel announced_model_;  // guarded by mu_
};

}  // namespace gateway::control
