#include "control/backend_watch.h"

#include <utility>

#include "control/backend_convert.h"
#include "control/proto_convert.h"

namespace gateway::control {

size_t BackendWatchTraits::HeapBytes(const BackendEvent& event) {
  return event.backend.address.size() + event.backend.last_error.size() + event.reason.size();
}

void BackendWatchTraits::ToMessage(const BackendEvent& event, v1::BackendEvent* out) { ToProto(event, out); }

BackendWatchStream::BackendWatchStream(Gateway* gateway, WatchPump* pump, std::shared_ptr<WatchRegistry> registry,
                                       const WatchLimits& limits)
    : gateway_(gateway),
      registry_(std::move(registry)),
      session_(std::make_shared<BackendWatchSession>(pump, limits.queue_events, limits.queue_bytes)) {
  session_->Bind(this);
  if (grpc::Status admitted = registry_->Add(session_); !admitted.ok()) {
    session_->RequestFinish(std::move(admitted), /*drain=*/false);
    return;
  }
  // Registering does not wait for the reactors: backend events are
  // published by the gateway, not by each reactor.
  if (absl::Status status = gateway_->AddBackendObserver(session_); !status.ok()) {
    session_->RequestFinish(ToGrpcStatus(status), /*drain=*/false);
    return;
  }
  observing_ = true;
  session_->Observing();
}

void BackendWatchStream::OnCancel() {
  session_->RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), /*drain=*/false);
}

void BackendWatchStream::OnDone() {
  if (observing_) gateway_->RemoveBackendObserver(session_.get());
  registry_->Remove(session_.get());
  delete this;
}

}  // namespace gateway::control
