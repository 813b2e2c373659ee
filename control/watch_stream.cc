#include "control/watch_stream.h"

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

// --- WatchSession ---

size_t ConnectionWatchTraits::HeapBytes(const Entry& entry) {
  // The peer's length rather than its capacity: the copy in the queue gets a
  // capacity that fits it, and this is known before copying anything.
  return entry.event.connection.peer.size();
}

void ConnectionWatchTraits::ToMessage(const Entry& entry, v1::ConnectionEvent* out) {
  if (entry.io_switch.has_value()) {
    ToProto(*entry.io_switch, out);
  } else {
    control::ToProto(entry.event, out);
  }
}

size_t WatchSession::QueuedBytes(const ConnectionEvent& event) {
  return kSlotBytes + event.connection.peer.size();  // HeapBytes() without a copy
}

void WatchSession::OnEvent(const ConnectionEvent& event) {
  const size_t bytes = QueuedBytes(event);
  Enqueue(ConnectionWatchTraits::Entry{event, std::nullopt}, bytes);
}

void WatchSession::OnIoModelSwitch(const IoModelSwitch& io_switch) {
  ConnectionWatchTraits::Entry entry{ConnectionEvent(), io_switch};
  const size_t bytes = Core::QueuedBytes(entry);
  Enqueue(std::move(entry), bytes);
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

grpc::Status WatchRegistry::Add(std::shared_ptr<WatchWriter> session) {
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

void WatchRegistry::Remove(const WatchWriter* session) {
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
  std::vector<std::shared_ptr<WatchWriter>> sessions;
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
  std::vector<std::shared_ptr<WatchWriter>> sessions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    sessions = sessions_;
  }
  for (auto& session : sessions) session->RequestFinish(grpc::Status::OK, /*drain=*/true);
}

}  // namespace gateway::control
