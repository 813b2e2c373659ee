// The WatchConnections stream: a gateway::ConnectionObserver that queues
// events from the reactors (and IO-model switches from the control plane) into a queue bounded in events and in bytes
// (dropping and counting what does not fit), a gRPC server-streaming reactor
// that writes them out one at a time, and the registry that caps how many
// streams are open at once. Reactor threads never call into gRPC for events:
// they queue and, when the stream is idle, hand it to the WatchPump, whose
// thread starts the write. Adding and removing a watcher does not block a
// gRPC thread either: the reactors' replies start the stream and free its
// slot.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/time/time.h"

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

// An IO-model switch made through SetIoModel. The control plane, not the
// data plane, announces it: a switch made by other means (none today) would
// not reach the watchers.
struct IoModelSwitch {
  IoModel old_model = IoModel::kEpoll;
  IoModel new_model = IoModel::kEpoll;
  absl::Duration duration;  // from the first reactor starting it to the last one done
  absl::Time time;
};

class WatchSession;

// The locks here are std::mutex, not absl::Mutex: Debian's Abseil is built
// without TSan annotations, so TSan cannot see absl::Mutex hand-offs.

// Thread-safe. Owns one thread that starts writes on streams that have events
// waiting and no write in flight, and the budget of writes per second all
// streams share (a token bucket holding a tenth of a second's worth): a
// stream that finds it empty waits its turn, first come first served, while
// its queue fills and then drops.
class WatchPump {
 public:
  explicit WatchPump(double events_per_sec = 0);  // 0 = no budget
  ~WatchPump();                                   // Stop()
  WatchPump(const WatchPump&) = delete;
  WatchPump& operator=(const WatchPump&) = delete;

  // Asks the pump thread to call session->StartNextWrite(). Never blocks.
  void Kick(std::shared_ptr<WatchSession> session);
  // Takes one write from the budget if one is left and no stream is waiting.
  bool TryTakeWrite();
  // Queues `session` for the next write the budget allows; the pump thread
  // then calls session->StartGrantedWrite(). Never blocks.
  void WaitForWrite(std::shared_ptr<WatchSession> session);
  // Joins the thread; later kicks are ignored. Idempotent.
  void Stop();

 private:
  using Clock = std::chrono::steady_clock;
  void Run();
  void RefillLocked(Clock::time_point now);

  const double rate_;   // writes per second; 0 = no budget
  const double burst_;  // the most the bucket holds
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<WatchSession>> ready_;    // guarded by mu_
  std::deque<std::shared_ptr<WatchSession>> waiting_;  // for the budget; guarded by mu_
  double tokens_;                                      // guarded by mu_
  Clock::time_point refilled_;                         // guarded by mu_
  bool stopping_ = false;                              // guarded by mu_
  std::thread thread_;
};

// One watcher's queue and write state. Thread-safe: OnEvent runs on reactor
// threads, StartNextWrite on the pump thread, the rest on gRPC threads.
// Shared by the gateway (as an observer), the pump and its stream.
//
// The queue holds at most `max_events` events and `max_bytes` bytes, where an
// event's bytes are estimated as QueuedBytes(): the size of its queue entry
// plus its peer string's length (the part of it on the heap once the string
// outgrows its inline buffer). Deque block overhead is not counted; the one
// event being written (out of the queue) is not either.
class WatchSession : public ConnectionObserver, public std::enable_shared_from_this<WatchSession> {
 public:
  WatchSession(WatchPump* pump, bool state_changes, size_t max_events, size_t max_bytes)
      : pump_(pump), state_changes_(state_changes), max_events_(max_events), max_bytes_(max_bytes) {}

  // The estimated bytes `event` takes in the queue.
  static size_t QueuedBytes(const ConnectionEvent& event);

  // ConnectionObserver: queue and return. If the event does not fit, count it
  // and return: a full queue costs the reactor a lock and an increment.
  bool WantsStateChanges() const override { return state_changes_; }
  void OnEvent(const ConnectionEvent& event) override;
  // Queues a switch like an event: same bounds, same drop-and-count.
  void OnIoModelSwitch(const IoModelSwitch& io_switch);

  // Binds the gRPC stream the events go to. Called once, before any event.
  void Bind(grpc::ServerWriteReactor<v1::ConnectionEvent>* stream);
  // Every reactor has the session as an observer: the stream sends its
  // headers (so the watcher knows every event from now on reaches it), then
  // the events queued meanwhile. Until then nothing is written.
  void Observing();
  // Starts a write if events wait and none is in flight (or the stream's
  // deferred Finish if it is due).
  void StartNextWrite();
  // StartNextWrite() with a write the pump took from the budget for it.
  void StartGrantedWrite();
  void OnWriteDone(bool ok);
  // Ends the stream with `status`: after the events already queued when
  // `drain` (a clean end), else at once (a cancelled call). Idempotent.
  void RequestFinish(grpc::Status status, bool drain);

  uint64_t dropped_total() const;
  size_t queued_events() const;
  uint64_t queued_bytes() const;
  uint64_t peak_queued_bytes() const;  // the most held at once

 private:
  // What the caller must do once `mu_` is released.
  enum class Action { kNone, kSendHeaders, kWrite, kFinish, kWaitForBudget };
  struct Next {
    Action action = Action::kNone;
    grpc::ServerWriteReactor<v1::ConnectionEvent>* stream = nullptr;
    grpc::Status status;
    bool more = false;  // kWrite: more events wait behind this one
  };
  struct Queued;
  // Queues `entry` (estimated at `bytes`) or counts it as dropped.
  void Enqueue(Queued entry, size_t bytes);
  Next NextLocked();   // with mu_ held
  void ClearLocked();  // with mu_ held: drops the queue (not counted: the stream is ending)
  void Act(const Next& next);

  WatchPump* const pump_;
  const bool state_changes_;
  const size_t max_events_;
  const size_t max_bytes_;

  // Everything below up to message_ is guarded by mu_.
  mutable std::mutex mu_;
  grpc::ServerWriteReactor<v1::ConnectionEvent>* stream_ = nullptr;
  struct Queued {
    ConnectionEvent event;                   // unless io_switch is set
    std::optional<IoModelSwitch> io_switch;  // an IO-model switch instead of a connection event
    uint64_t dropped_before = 0;             // events dropped between the previous one and this
  };
  std::deque<Queued> queue_;
  size_t queued_bytes_ = 0;  // QueuedBytes() summed over queue_
  size_t peak_queued_bytes_ = 0;
  uint64_t dropped_pending_ = 0;  // dropped since the last queued event
  uint64_t dropped_total_ = 0;
  bool kicked_ = false;              // the pump has it queued
  bool observing_ = false;           // every reactor publishes to it
  bool headers_sent_ = false;        // started: no events are written before them
  bool writing_ = false;             // a write (or the headers) is in flight
  bool waiting_for_budget_ = false;  // queued in the pump for a write
  bool granted_ = false;             // holds a write from the budget
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

// Thread-safe: the live watch sessions, at most `max_watchers` of them (0 =
// no limit), so a shutdown can end them all, and the IO model last announced
// to them.
class WatchRegistry {
 public:
  WatchRegistry(int max_watchers, IoModel io_model) : max_watchers_(max_watchers), announced_model_(io_model) {}

  // Takes a slot for `session`. RESOURCE_EXHAUSTED when every slot is taken,
  // UNAVAILABLE once EndAll() has run: the caller must end its call with it.
  grpc::Status Add(std::shared_ptr<WatchSession> session);
  // Frees the session's slot. Call once its stream is done.
  void Remove(const WatchSession* session);
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
  std::vector<std::shared_ptr<WatchSession>> sessions_;  // guarded by mu_
  bool ended_ = false;                                   // guarded by mu_
  uint64_t refused_ = 0;                                 // guarded by mu_
  // Of the streams already removed; guarded by mu_.
  uint64_t dropped_removed_ = 0;
  uint64_t peak_removed_ = 0;
  IoModel announced_model_;  // guarded by mu_
};

}  // namespace gateway::control
