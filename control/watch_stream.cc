#include "control/watch_stream.h"

#include <utility>

#include "control/proto_convert.h"

namespace gateway::control {

// --- WatchPump ---

WatchPump::WatchPump() : thread_([this] { Run(); }) {}

WatchPump::~WatchPump() { Stop(); }

void WatchPump::Kick(std::shared_ptr<WatchSession> session) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    ready_.push_back(std::move(session));
  }
  wake_.notify_one();
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
}

void WatchPump::Run() {
  for (;;) {
    std::deque<std::shared_ptr<WatchSession>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;
      batch.swap(ready_);
    }
    for (auto& session : batch) session->StartNextWrite();
  }
}

// --- WatchSession ---

void WatchSession::OnEvent(const ConnectionEvent& event) {
  bool kick = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finish_wanted_) return;
    if (queue_.size() >= capacity_) {
      ++dropped_pending_;
      ++dropped_total_;
      return;
    }
    queue_.push_back(Queued{event, dropped_pending_});
    dropped_pending_ = 0;
    if (!writing_ && !kicked_) kicked_ = kick = true;
  }
  // Outside the lock: the pump may call back into this session at once.
  if (kick) pump_->Kick(shared_from_this());
}

void WatchSession::Bind(grpc::ServerWriteReactor<v1::ConnectionEvent>* stream) {
  std::lock_guard<std::mutex> lock(mu_);
  stream_ = stream;
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

void WatchSession::OnWriteDone(bool ok) {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok && !finish_wanted_) {  // the client has gone
      finish_wanted_ = true;
      finish_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "write failed");
    }
    if (!ok) queue_.clear();
    next = NextLocked();
  }
  Act(next);
}

void WatchSession::RequestFinish(grpc::Status status, bool drain) {
  Next next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!drain) queue_.clear();
    if (finish_wanted_) return;
    finish_wanted_ = true;
    finish_drain_ = drain;
    finish_status_ = std::move(status);
    next = NextLocked();
  }
  Act(next);
}

uint64_t WatchSession::dropped_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_total_;
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
  if (queue_.empty()) return next;
  // message_ is free: no write is in flight.
  message_.Clear();
  ToProto(queue_.front().event, &message_);
  message_.set_dropped(queue_.front().dropped_before);
  queue_.pop_front();
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
    case Action::kWrite: next.stream->StartWrite(&message_); break;
    case Action::kFinish: next.stream->Finish(next.status); break;
  }
}

// --- WatchStream ---

WatchStream::WatchStream(Gateway* gateway, WatchPump* pump, WatchRegistry* registry,
                         const v1::WatchConnectionsRequest& request, size_t capacity)
    : gateway_(gateway),
      registry_(registry),
      session_(std::make_shared<WatchSession>(pump, request.include_state_changes(), capacity)) {
  session_->Bind(this);
  if (!registry_->Add(session_)) {
    session_->RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the control plane is shutting down"),
                            /*drain=*/false);
    return;
  }
  observing_ = true;
  absl::Status status = gateway_->AddObserver(session_);
  if (!status.ok()) {
    session_->RequestFinish(ToGrpcStatus(status), /*drain=*/false);
    return;
  }
  // The watcher can wait for the headers to know that every event from now
  // on reaches it.
  StartSendInitialMetadata();
}

void WatchStream::OnCancel() {
  session_->RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), /*drain=*/false);
}

void WatchStream::OnDone() {
  if (observing_) gateway_->RemoveObserver(session_.get());
  registry_->Remove(session_.get());
  delete this;
}

// --- WatchRegistry ---

bool WatchRegistry::Add(std::shared_ptr<WatchSession> session) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ended_) return false;
  sessions_.push_back(std::move(session));
  return true;
}

void WatchRegistry::Remove(const WatchSession* session) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(sessions_, [session](const auto& s) { return s.get() == session; });
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
