#include "gateway/connection_events.h"

#include <algorithm>

#include "gateway/connection.h"
#include "gateway/event_loop.h"

namespace gateway {

void ConnectionEvents::AddObserver(std::shared_ptr<ConnectionObserver> observer) {
  if (observer->WantsStateChanges()) ++state_observers_;
  observers_.push_back(std::move(observer));
}

void ConnectionEvents::RemoveObserver(const ConnectionObserver* observer) {
  auto it =
      std::find_if(observers_.begin(), observers_.end(), [observer](const auto& o) { return o.get() == observer; });
  if (it == observers_.end()) return;
  if ((*it)->WantsStateChanges()) --state_observers_;
  observers_.erase(it);
}

void ConnectionEvents::Opened(const Connection& connection) {
  stats_->by_state[static_cast<int>(connection.state())].Add(1);
  if (!observers_.empty()) Publish(EventFor(connection, ConnectionEvent::Type::kOpened));
}

void ConnectionEvents::PublishStateChange(const Connection& connection, ConnectionState old_state) {
  ConnectionEvent event = EventFor(connection, ConnectionEvent::Type::kStateChanged);
  event.old_state = old_state;
  Publish(event);
}

void ConnectionEvents::Closed(const Connection& connection, CloseReason reason) {
  stats_->by_state[static_cast<int>(connection.state())].Add(-1);
  if (observers_.empty()) return;
  ConnectionEvent event = EventFor(connection, ConnectionEvent::Type::kClosed);
  event.reason = reason;
  Publish(event);
}

void ConnectionEvents::Publish(const ConnectionEvent& event) {
  for (const auto& observer : observers_) {
    if (event.type == ConnectionEvent::Type::kStateChanged && !observer->WantsStateChanges()) continue;
    observer->OnEvent(event);
  }
}

ConnectionEvent ConnectionEvents::EventFor(const Connection& connection, ConnectionEvent::Type type) {
  ConnectionEvent event;
  event.type = type;
  event.time = absl::Now();
  event.connection = connection.Snapshot(event.time, MonotonicNowNs());
  return event;
}

}  // namespace gateway
