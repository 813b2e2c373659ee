// What every watch stream (WatchConnections, WatchBackends) shares: the
// WatchPump thread that starts their writes within a budget of writes per
// second, the WatchWriter face the pump and the registry see, and
// WatchSessionCore, one watcher's bounded queue and write state machine,
// generic over the event it queues and the message it writes. Data-plane
// threads only queue: gRPC is called from the pump's and gRPC's threads.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/time/time.h"
#include "gateway/types.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"

namespace gateway::control {

// An IO-model switch made through SetIoModel. The control plane, not the
// data plane, announces it: a switch made by other means (none today) would
// not reach the watchers.
struct IoModelSwitch {
  IoModel old_model = IoModel::kEpoll;
  IoModel new_model = IoModel::kEpoll;
  absl::Duration duration;  // from the first reactor starting it to the last one done
  absl::Time time;
};

// One watcher as the pump and the registry see it. Thread-safe.
class WatchWriter : public std::enable_shared_from_this<WatchWriter> {
 public:
  virtual ~WatchWriter() = default;
  // Starts a write if events wait and none is in flight (or the stream's
  // deferred Finish if it is due).
  virtual void StartNextWrite() = 0;
  // StartNextWrite() with a write the pump took from the budget for it.
  virtual void StartGrantedWrite() = 0;
  // Ends the stream with `status`: after the events already queued when
  // `drain` (a clean end), else at once (a cancelled call). Idempotent.
  virtual void RequestFinish(grpc::Status status, bool drain) = 0;
  // Streams that report IO-model switches queue it; the others ignore it.
  virtual void OnIoModelSwitch(const IoModelSwitch& /*io_switch*/) {}
  virtual uint64_t dropped_total() const = 0;
  virtual uint64_t queued_bytes() const = 0;
  virtual uint64_t peak_queued_bytes() const = 0;  // the most held at once
};

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

  // Asks the pump thread to call writer->StartNextWrite(). Never blocks.
  void Kick(std::shared_ptr<WatchWriter> writer);
  // Takes one write from the budget if one is left and no stream is waiting.
  bool TryTakeWrite();
  // Queues `writer` for the next write the budget allows; the pump thread
  // then calls writer->StartGrantedWrite(). Never blocks.
  void WaitForWrite(std::shared_ptr<WatchWriter> writer);
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
  std::deque<std::shared_ptr<WatchWriter>> ready_;    // guarded by mu_
  std::deque<std::shared_ptr<WatchWriter>> waiting_;  // for the budget; guarded by mu_
  double tokens_;                                     // guarded by mu_
  Clock::time_point refilled_;                        // guarded by mu_
  bool stopping_ = false;                             // guarded by mu_
  std::thread thread_;
};

// One watcher's queue and write state. Thread-safe: Enqueue runs on the
// threads that publish events, StartNextWrite on the pump thread, the rest
// on gRPC threads. Shared by its publisher, the pump and its stream.
//
// Traits says what is queued and written:
//   using Entry = ...;    // what a publisher hands over (cheap to copy)
//   using Message = ...;  // the stream's proto message, with a `dropped` field
//   static size_t HeapBytes(const Entry&);            // its bytes outside the queue entry
//   static void ToMessage(const Entry&, Message* out);  // on the write, not on the publisher's thread
// The queue holds at most `max_events` entries and `max_bytes` bytes, an
// entry counted as QueuedBytes(): the size of its queue slot plus
// HeapBytes(). Deque block overhead is not counted; the one event being
// written (out of the queue) is not either.
template <typename Traits>
class WatchSessionCore : public WatchWriter {
 public:
  using Entry = typename Traits::Entry;
  using Message = typename Traits::Message;
  using Stream = grpc::ServerWriteReactor<Message>;

  WatchSessionCore(WatchPump* pump, size_t max_events, size_t max_bytes)
      : pump_(pump), max_events_(max_events), max_bytes_(max_bytes) {}

  static size_t QueuedBytes(const Entry& entry) { return kSlotBytes + Traits::HeapBytes(entry); }

  // Binds the gRPC stream the events go to. Called once, before any event.
  void Bind(Stream* stream) {
    std::lock_guard<std::mutex> lock(mu_);
    stream_ = stream;
  }
  // The publisher sends every event from now on: the stream sends its
  // headers (so the watcher knows nothing is missed from then), then the
  // events queued meanwhile. Until then nothing is written.
  void Observing() {
    Next next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      observing_ = true;
      next = NextLocked();
    }
    Act(next);
  }
  void StartNextWrite() override {
    Next next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      kicked_ = false;
      next = NextLocked();
    }
    Act(next);
  }
  void StartGrantedWrite() override {
    Next next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      waiting_for_budget_ = false;
      granted_ = true;
      next = NextLocked();
    }
    Act(next);
  }
  void OnWriteDone(bool ok) {
    Next next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok && !finish_wanted_) {  // the client has gone
        finish_wanted_ = true;
        finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
      }
      if (!ok) ClearLocked();
      next = NextLocked();
    }
    Act(next);
  }
  void RequestFinish(grpc::Status status, bool drain) override {
    Next next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!drain) ClearLocked();
      if (finish_wanted_) {
        if (drain || !finish_drain_) return;
        finish_drain_ = false;  // a clean end that was waiting is cut short
      } else {
        finish_wanted_ = true;
        finish_drain_ = drain;
        finish_status_ = std::move(status);
      }
      next = NextLocked();
    }
    Act(next);
  }

  uint64_t dropped_total() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_total_;
  }
  size_t queued_events() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }
  uint64_t queued_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return queued_bytes_;
  }
  uint64_t peak_queued_bytes() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_queued_bytes_;
  }

 protected:
  // Queues `entry` (estimated at `bytes`, its QueuedBytes()) or, if it does
  // not fit, counts it as dropped: a full queue costs the publisher a lock
  // and an increment.
  void Enqueue(Entry entry, size_t bytes) {
    bool kick = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finish_wanted_) return;
      if (queue_.size() >= max_events_ || bytes > max_bytes_ - queued_bytes_) {
        ++dropped_pending_;
        ++dropped_total_;
        return;
      }
      queue_.push_back(Queued{std::move(entry), dropped_pending_});
      queued_bytes_ += bytes;
      peak_queued_bytes_ = std::max(peak_queued_bytes_, queued_bytes_);
      dropped_pending_ = 0;
      if (!writing_ && !kicked_ && !waiting_for_budget_) kicked_ = kick = true;
    }
    // Outside the lock: the pump may call back into this session at once.
    if (kick) pump_->Kick(shared_from_this());
  }

 private:
  struct Queued {
    Entry entry;
    uint64_t dropped_before = 0;  // events dropped between the previous one and this
  };

 protected:
  static constexpr size_t kSlotBytes = sizeof(Queued);

 private:
  // What the caller must do once `mu_` is released.
  enum class Action { kNone, kSendHeaders, kWrite, kFinish, kWaitForBudget };
  struct Next {
    Action action = Action::kNone;
    Stream* stream = nullptr;
    grpc::Status status;
    bool more = false;  // kWrite: more events wait behind this one
  };

  void ClearLocked() {  // the stream is ending: not counted as dropped
    queue_.clear();
    queued_bytes_ = 0;
  }

  Next NextLocked() {
    Next next;
    if (stream_ == nullptr || finish_called_ || writing_) return next;
    next.stream = stream_;
    if (finish_wanted_ && (!finish_drain_ || queue_.empty())) {
      finish_called_ = true;
      next.action = Action::kFinish;
      next.status = finish_status_;
      return next;
    }
    if (!headers_sent_) {
      if (!observing_) return next;  // hold the events until the publisher sends them all
      headers_sent_ = true;
      writing_ = true;
      next.action = Action::kSendHeaders;
      return next;
    }
    if (queue_.empty()) return next;
    // Events take a write from the budget (the pump's lock nests inside mu_,
    // never the other way round); the last ones of a clean end do not.
    if (!granted_ && !finish_wanted_ && !pump_->TryTakeWrite()) {
      if (!waiting_for_budget_) {
        waiting_for_budget_ = true;
        next.action = Action::kWaitForBudget;
      }
      return next;
    }
    granted_ = false;
    // message_ is free: no write is in flight.
    message_.Clear();
    Traits::ToMessage(queue_.front().entry, &message_);
    message_.set_dropped(queue_.front().dropped_before);
    queued_bytes_ -= QueuedBytes(queue_.front().entry);
    queue_.pop_front();
    next.more = !queue_.empty();
    writing_ = true;
    next.action = Action::kWrite;
    return next;
  }

  void Act(const Next& next) {
    // Once an action is taken the session is past the point where another
    // thread could Finish the stream (writing_ or finish_called_ is set), so
    // the stream is alive here even without the lock.
    switch (next.action) {
      case Action::kNone: break;
      case Action::kSendHeaders: next.stream->StartSendInitialMetadata(); break;
      case Action::kWrite:
        // With more to come, gRPC may hold the message back and send it with
        // the next (the last write of a burst goes out at once): one syscall
        // and one wakeup for many events instead of one each.
        next.stream->StartWrite(&message_, next.more ? grpc::WriteOptions().set_buffer_hint() : grpc::WriteOptions());
        break;
      case Action::kFinish: next.stream->Finish(next.status); break;
      case Action::kWaitForBudget: pump_->WaitForWrite(shared_from_this()); break;
    }
  }

  WatchPump* const pump_;
  const size_t max_events_;
  const size_t max_bytes_;

  // Everything below up to message_ is guarded by mu_.
  mutable std::mutex mu_;
  Stream* stream_ = nullptr;
  std::deque<Queued> queue_;
  size_t queued_bytes_ = 0;  // QueuedBytes() summed over queue_
  size_t peak_queued_bytes_ = 0;
  uint64_t dropped_pending_ = 0;  // dropped since the last queued event
  uint64_t dropped_total_ = 0;
  bool kicked_ = false;              // the pump has it queued
  bool observing_ = false;           // the publisher sends it everything
  bool headers_sent_ = false;        // started: no events are written before them
  bool writing_ = false;             // a write (or the headers) is in flight
  bool waiting_for_budget_ = false;  // queued in the pump for a write
  bool granted_ = false;             // holds a write from the budget
  bool finish_wanted_ = false;
  bool finish_drain_ = false;
  bool finish_called_ = false;
  grpc::Status finish_status_;
  // Written only while writing_ is false, read by gRPC while it is true.
  Message message_;
};

}  // namespace gateway::control
