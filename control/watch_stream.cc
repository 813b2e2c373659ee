#include "control/watch_stream.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "control/proto_convert.h"

namespace gateway::control {
namespace {

void ToProto(const IoModelSwitch& io_switch, v1::ConnectionEvent* out) {
  out->set_type(v1::ConnectionEvent::TYPE_IO_MODEL_SWITCHED);
  v1::IoModelSwitch* message = out->mutable_io_model_switch();
  message->set_old_model(control::ToProto(io_switch.old_model));
  message->set_new_model(control::ToProto(io_switch.new_model));
  control::ToProto(io_switch.duration, message->mutable_duration());
  control::ToProto(io_switch.time, out->mutable_time());
}

}  // namespace

// --- WatchPump ---

WatchPump::WatchPump(double events_per_sec)
    : rate_(std::max(0.0, events_per_sec)),
      burst_(std::max(1.0, rate_ / 10)),
      tokens_(burst_),
      refilled_(Clock::now()),
      thread_([this] { Run(); }) {}

WatchPump::~WatchPump() { Stop(); }

void WatchPump::Kick(std::shared_ptr<WatchSession> session) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    ready_.push_back(std::move(session));
  }
  wake_.notify_one();
}

bool WatchPump::TryTakeWrite() {
  if (rate_ == 0) return true;
  std::lock_guard<std::mutex> lock(mu_);
  if (!waiting_.empty()) return false;  // first come, first served
  RefillLocked(Clock::now());
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void WatchPump::WaitForWrite(std::shared_ptr<WatchSession> session) {
  bool first = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    first = waiting_.empty();
    waiting_.push_back(std::move(session));
  }
  // Otherwise the pump is already timing the next grant.
  if (first) wake_.notify_one();
}

void WatchPump::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  ready_.clear();
  waiting_.clear();
}

void WatchPump::RefillLocked(Clock::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - refilled_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  refilled_ = now;
}

void WatchPump::Run() {
  // Named for top -H and perf; a failure (name too long) only loses the name.
  (void)pthread_setname_np(pthread_self(), "watch-pump");
  for (;;) {
    std::deque<std::shared_ptr<WatchSession>> kicked;
    std::vector<std::shared_ptr<WatchSession>> granted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (stopping_) return;
        if (!ready_.empty()) break;
        if (waiting_.empty()) {
          wake_.wait(lock);
          continue;
        }
        RefillLocked(Clock::now());
        if (tokens_ >= 1) break;
        // Grants go out in batches at most every millisecond: waking for
        // each one would cost more than the writes it paces.
        const auto next_token = std::chrono::duration<double>((1 - tokens_) / rate_);
        wake_.wait_for(lock, std::max<Clock::duration>(std::chrono::milliseconds(1),
                                                       std::chrono::duration_cast<Clock::duration>(next_token)));
      }
      kicked.swap(ready_);
      if (!waiting_.empty()) RefillLocked(Clock::now());
      while (tokens_ >= 1 && !waiting_.empty()) {
        tokens_ -= 1;
        granted.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
    }
    for (auto& session : kicked) session->StartNextWrite();
    for (auto& session : granted) session->StartGrantedWrite();
  }
}

// --- WatchSession ---

size_t WatchSession::QueuedBytes(const ConnectionEvent& event) {
  // The peer's length rather than its capacity: the copy in the queue gets a
  // capacity that fits it, and this is known before copying anything.
  return sizeof(Queued) + event.connection.peer.size();
}

void WatchSession::OnEvent(const ConnectionEvent& event) {
  const size_t bytes = QueuedBytes(event);
  Enqueue(Queued{event, std::nullopt, 0}, bytes);
}

void WatchSession::OnIoModelSwitch(const IoModelSwitch& io_switch) {
  Queued entry{ConnectionEvent(), io_switch, 0};
  const size_t bytes = QueuedBytes(entry.event);  // what NextLocked() takes off again
  Enqueue(std::move(entry), bytes);
}

void WatchSession::Enqueue(Queued entry, size_t bytes) {
  bool kick = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_wanted_) return;
    if (queue_.size() >= max_events_ || bytes > max_bytes_ - queued_bytes_) {
      ++dropped_pending_;
      ++dropped_total_;
      return;
    }
    entry.dropped_before = dropped_pending_;
    queue_.push_back(std::move(entry));
    queued_bytes_ += bytes;
    peak_queued_bytes_ = std::max(peak_queued_bytes_, queued_bytes_);
    dropped_pending_ = 0;
    if (!writing_ && !kicked_ && !waiting_for_budget_) kicked_ = kick = true;
  }
  // Outside the lock: the pump may call back into this session at once.
  if (kick) pump_->Kick(shared_from_this());
}

void WatchSession::Bind(grpc::ServerWriteReactor<v1::ConnectionEvent>* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  stream_ = stream;
}

void WatchSession::Observing() {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    observing_ = true;
    next = NextLocked();
  }
  Act(next);
}

void WatchSession::StartNextWrite() {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    kicked_ = false;
    next = NextLocked();
  }
  Act(next);
}

void WatchSession::StartGrantedWrite() {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_for_budget_ = false;
    granted_ = true;
    next = NextLocked();
  }
  Act(next);
}

void WatchSession::OnWriteDone(bool ok) {
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

void WatchSession::RequestFinish(grpc::Status status, bool drain) {
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

uint64_t WatchSession::dropped_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_total_;
}

size_t WatchSession::queued_events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size();
}

uint64_t WatchSession::queued_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_bytes_;
}

uint64_t WatchSession::peak_queued_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_queued_bytes_;
}

void WatchSession::ClearLocked() {
  queue_.clear();
  queued_bytes_ = 0;
}

WatchSession::Next WatchSession::NextLocked() {
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
    if (!observing_) return next;  // hold the events until every reactor sends them
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
  if (const std::optional<IoModelSwitch>& io_switch = queue_.front().io_switch; io_switch.has_value()) {
    ToProto(*io_switch, &message_);
  } else {
    ToProto(queue_.front().event, &message_);
  }
  message_.set_dropped(queue_.front().dropped_before);
  queued_bytes_ -= QueuedBytes(queue_.front().event);
  queue_.pop_front();
  next.more = !queue_.empty();
  writing_ = true;
  next.action = Action::kWrite;
  return next;
}

void WatchSession::Act(const Next& next) {
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

// --- WatchStream ---

WatchStream::WatchStream(Gateway* gateway, WatchPump* pump, std::shared_ptr<WatchRegistry> registry,
                         const v1::WatchConnectionsRequest& request, const WatchLimits& limits)
    : gateway_(gateway),
      registry_(std::move(registry)),
      session_(std::make_shared<WatchSession>(pump, request.include_state_changes(), limits.queue_events,
                                              limits.queue_bytes)) {
  session_->Bind(this);
  if (grpc::Status admitted = registry_->Add(session_); !admitted.ok()) {
    session_->RequestFinish(std::move(admitted), /*drain=*/false);
    return;
  }
  observing_ = true;
  // The reply comes on a reactor thread, maybe after the call has ended: it
  // reaches the session (shared), never this stream.
  gateway_->AddObserver(session_, [session = session_](absl::Status status) {
    if (status.ok()) {
      session->Observing();
    } else {
      session->RequestFinish(ToGrpcStatus(status), /*drain=*/false);
    }
  });
}

void WatchStream::OnCancel() {
  session_->RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), /*drain=*/false);
}

void WatchStream::OnDone() {
  // The reactors stop publishing to the session before its slot is freed, so
  // the cap also bounds what the reactors spend on watchers.
  if (observing_) {
    // Posted after the additions, so every reactor removes what it added.
    gateway_->RemoveObserver(session_.get(),
                             [registry = registry_, session = session_] { registry->Remove(session.get()); });
  } else {
    registry_->Remove(session_.get());
  }
  delete this;
}

// --- WatchRegistry ---

grpc::Status WatchRegistry::Add(std::shared_ptr<WatchSession> session) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the control plane is shutting down");
  if (max_watchers_ > 0 && sessions_.size() >= static_cast<size_t>(max_watchers_)) {
    ++refused_;
    return grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("too many watchers: ", sessions_.size(), " streams open, --max_watchers=", max_watchers_));
  }
  sessions_.push_back(std::move(session));
  return grpc::Status::OK;
}

void WatchRegistry::Remove(const WatchSession* session) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(sessions_.begin(), sessions_.end(), [session](const auto& s) { return s.get() == session; });
  if (it == sessions_.end()) return;  // refused: it never had a slot
  dropped_removed_ += session->dropped_total();
  peak_removed_ = std::max(peak_removed_, session->peak_queued_bytes());
  sessions_.erase(it);
}

WatchStats WatchRegistry::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  WatchStats stats;
  stats.open = static_cast<int>(sessions_.size());
  stats.refused = refused_;
  stats.dropped = dropped_removed_;
  stats.peak_queued_bytes = peak_removed_;
  for (const auto& session : sessions_) {
    stats.queued_bytes += session->queued_bytes();
    stats.dropped += session->dropped_total();
    stats.peak_queued_bytes = std::max(stats.peak_queued_bytes, session->peak_queued_bytes());
  }
  return stats;
}

void WatchRegistry::IoModelSet(IoModel model, absl::Duration duration) {
  IoModelSwitch io_switch{IoModel::kEpoll, model, duration, absl::Now()};
  std::vector<std::shared_ptr<WatchSession>> sessions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (model == announced_model_) return;
    io_switch.old_model = announced_model_;
    announced_model_ = model;
    sessions = sessions_;
  }
  // Outside mu_: a session may kick the pump, which calls back into sessions.
  for (auto& session : sessions) session->OnIoModelSwitch(io_switch);
}

void WatchRegistry::EndAll() {
  std::vector<std::shared_ptr<WatchSession>> sessions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    sessions = sessions_;
  }
  for (auto& session : sessions) session->RequestFinish(grpc::Status::OK, /*drain=*/true);
}

}  // namespace gateway::control
