// What a reactor's connections report as they open, change state and close:
// the per-state gauges, and the events fanned out to observers.
#pragma once

#include <memory>
#include <vector>

#include "gateway/connection_observer.h"
#include "gateway/reactor_stats.h"
#include "gateway/types.h"

namespace gateway {

class Connection;

// Loop-thread only; one per reactor. Observers are added and removed through
// tasks posted to the loop; OnEvent runs on this loop's thread.
class ConnectionEvents {
 public:
  explicit ConnectionEvents(ReactorStats* stats) : stats_(stats) {}

  void AddObserver(std::shared_ptr<ConnectionObserver> observer);
  void RemoveObserver(const ConnectionObserver* observer);

  void Opened(const Connection& connection);
  // Called several times per request: without an observer that wants state
  // changes it only moves two gauges.
  void StateChanged(const Connection& connection, ConnectionState old_state, ConnectionState new_state) {
    stats_->by_state[static_cast<int>(old_state)].Add(-1);
    stats_->by_state[static_cast<int>(new_state)].Add(1);
    if (state_observers_ > 0) PublishStateChange(connection, old_state);
  }
  void Closed(const Connection& connection, CloseReason reason);

 private:
  void PublishStateChange(const Connection& connection, ConnectionState old_state);
  void Publish(const ConnectionEvent& event);
  static ConnectionEvent EventFor(const Connection& connection, ConnectionEvent::Type type);

  ReactorStats* const stats_;
  std::vector<std::shared_ptr<ConnectionObserver>> observers_;
  int state_observers_ = 0;  // observers that want state changes
};

}  // namespace gateway
