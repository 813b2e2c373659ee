// The WatchConnections stream: a gateway::ConnectionObserver that queues
// events from the reactors into a bounded queue (dropping and counting what
// does not fit), and a gRPC server-streaming reactor that writes them out one
// at a time. Reactor threads never call into gRPC: they queue and, when the
// stream is idle, hand it to the WatchPump, whose thread starts the write.
#pragma once

#include <cstddef>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/connection_observer.h"
#include "gateway/gateway.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/support/server_callback.h"

namespace gateway::control {

class WatchSession;

// The locks here are std::mutex, not absl::Mutex: Debian's Abseil is built
// without TSan annotations, so TSan cannot see absl::Mutex hand-offs.

// Thread-safe. Owns one thread that starts writes on streams that have events
// waiting and no write in flight.
class WatchPump {
 public:
  WatchPump();
  ~WatchPump();  // Stop()
  WatchPump(const WatchPump&) = delete;
  WatchPump& operator=(const WatchPump&) = delete;

  // Asks the pump thread to call session->StartNextWrite(). Never blocks.
  void Kick(std::shared_ptr<WatchSession> session);
  // Joins the thread; later kicks are ignored. Idempotent.
  void Stop();

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<WatchSession>> ready_;  // guarded by mu_
  bool stopping_ = false;                            // guarded by mu_
  std::thread thread_;
};

// One watcher's queue and write state. Thread-safe: OnEvent runs on reactor
// threads, StartNextWrite on the pump thread, the rest on gRPC threads.
// Shared by the gateway (as an observer), the pump and its stream.
class WatchSession : public ConnectionObserver, public std::enable_shared_from_this<WatchSession> {
 public:
  WatchSession(WatchPump* pump, bool state_changes, size_t capacity)
      : pump_(pump), state_changes_(state_changes), capacity_(capacity) {}

  // ConnectionObserver: queue and return; count the event if the queue is full.
  bool WantsStateChanges() const override { return state_changes_; }
  void OnEvent(const ConnectionEvent& event) override;

  // Binds the gRPC stream the events go to. Called once, before any event.
  void Bind(grpc::ServerWriteReactor<v1::ConnectionEvent>* stream);
  // Starts a write if events wait and none is in flight (or the stream's
  // deferred Finish if it is due).
  void StartNextWrite();
  void OnWriteDone(bool ok);
  // Ends the stream with `status`: after the events already queued when
  // `drain` (a clean end), else at once (a cancelled call). Idempotent.
  void RequestFinish(grpc::Status status, bool drain);

  uint64_t dropped_total() const;

 private:
  // What the caller must do once `mu_` is released.
  enum class Action { kNone, kWrite, kFinish };
  struct Next {
    Action action = Action::kNone;
    grpc::ServerWriteReactor<v1::ConnectionEvent>* stream = nullptr;
    grpc::Status status;
  };
  Next NextLocked();  // with mu_ held
  void Act(const Next& next);

  WatchPump* const pump_;
  const bool state_changes_;
  const size_t capacity_;

  // Everything below up to message_ is guarded by mu_.
  mutable std::mutex mu_;
  grpc::ServerWriteReactor<v1::ConnectionEvent>* stream_ = nullptr;
  struct Queued {
    ConnectionEvent event;
    uint64_t dropped_before = 0;  // events dropped between the previous one and this
  };
  std::deque<Queued> queue_;
  uint64_t dropped_pending_ = 0;  // dropped since the last queued event
  uint64_t dropped_total_ = 0;
  bool kicked_ = false;   // the pump has it queued
  bool writing_ = false;  // a write is in flight
  bool finish_wanted_ = false;
  bool finish_drain_ = false;
  bool finish_called_ = false;
  grpc::Status finish_status_;
  // Written only while writing_ is false, read by gRPC while it is true.
  v1::ConnectionEvent message_;
};

class WatchRegistry;

// The gRPC reactor of one WatchConnections call; deletes itself in OnDone.
// gRPC-thread only (its session does the cross-thread work).
class WatchStream : public grpc::ServerWriteReactor<v1::ConnectionEvent> {
 public:
  // Registers a session with `gateway` and starts streaming; on failure ends
  // the call with the error.
  WatchStream(Gateway* gateway, WatchPump* pump, WatchRegistry* registry, const v1::WatchConnectionsRequest& request,
              size_t capacity);

  void OnWriteDone(bool ok) override { session_->OnWriteDone(ok); }
  void OnCancel() override;
  void OnDone() override;

 private:
  Gateway* const gateway_;
  WatchRegistry* const registry_;
  std::shared_ptr<WatchSession> session_;
  bool observing_ = false;
};

// Thread-safe: the live watch sessions, so a shutdown can end them all.
class WatchRegistry {
 public:
  // False once EndAll() has run: the caller must end its call instead.
  bool Add(std::shared_ptr<WatchSession> session);
  void Remove(const WatchSession* session);
  // Ends every live stream cleanly (queued events first, then OK) and refuses new ones.
  void EndAll();

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<WatchSession>> sessions_;  // guarded by mu_
  bool ended_ = false;                                   // guarded by mu_
};

}  // namespace gateway::control
