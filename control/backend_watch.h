// The WatchBackends stream: a gateway::BackendObserver that queues backend
// events into a WatchSessionCore (the same bounds, pump and write budget as
// WatchConnections), and the gRPC server-streaming reactor that writes them
// out. The gateway's threads only queue; the pump's thread starts writes.
#pragma once

#include <cstddef>
#include <memory>

#include "control/watch_session.h"
#include "control/watch_stream.h"
#include "gateway/gateway.h"
#include "gateway/upstream_types.h"
#include "gateway/v1/backend.pb.h"
#include "grpcpp/support/server_callback.h"

namespace gateway::control {

// What a WatchBackends session queues and writes (see WatchSessionCore).
struct BackendWatchTraits {
  using Entry = BackendEvent;
  using Message = v1::BackendEvent;
  // Its strings' lengths: the parts that may sit on the heap.
  static size_t HeapBytes(const BackendEvent& event);
  static void ToMessage(const BackendEvent& event, v1::BackendEvent* out);
};

// One WatchBackends watcher. Thread-safe: OnBackendEvent runs on whichever
// gateway thread made the change.
class BackendWatchSession : public WatchSessionCore<BackendWatchTraits>, public BackendObserver {
 public:
  using WatchSessionCore::WatchSessionCore;
  // Queues and returns (or counts it as dropped).
  void OnBackendEvent(const BackendEvent& event) override { Enqueue(event, QueuedBytes(event)); }
};

// The gRPC reactor of one WatchBackends call; deletes itself in OnDone.
// gRPC-thread only (its session does the cross-thread work).
class BackendWatchStream : public grpc::ServerWriteReactor<v1::BackendEvent> {
 public:
  // Takes a slot in `registry` and registers a session with `gateway`; on
  // failure (no slot, shutting down, not in upstream mode) ends the call
  // with the error.
  BackendWatchStream(Gateway* gateway, WatchPump* pump, std::shared_ptr<WatchRegistry> registry,
                     const WatchLimits& limits);

  void OnSendInitialMetadataDone(bool ok) override { session_->OnWriteDone(ok); }
  void OnWriteDone(bool ok) override { session_->OnWriteDone(ok); }
  void OnCancel() override;
  void OnDone() override;

 private:
  Gateway* const gateway_;
  const std::shared_ptr<WatchRegistry> registry_;
  const std::shared_ptr<BackendWatchSession> session_;
  bool observing_ = false;
};

}  // namespace gateway::control
