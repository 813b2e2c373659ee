// A ConnectionObserver that records every event, for tests that assert the
// exact lifecycle of a connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/connection_observer.h"

namespace gateway::testing {

// Thread-safe: reactors call OnEvent, the test thread reads. Uses std::mutex
// (Debian's Abseil is built without TSan annotations, so absl::Mutex would
// show up as false races under TSan).
class RecordingObserver final : public ConnectionObserver {
 public:
  explicit RecordingObserver(bool wants_state_changes = true) : wants_state_changes_(wants_state_changes) {}

  bool WantsStateChanges() const override { return wants_state_changes_; }
  void OnEvent(const ConnectionEvent& event) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(event);
    }
    changed_.notify_all();
  }

  // Events of the connection whose peer is `peer` ("127.0.0.1:port").
  std::vector<ConnectionEvent> EventsFor(const std::string& peer) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ConnectionEvent> out;
    for (const ConnectionEvent& e : events_) {
      if (e.connection.peer == peer) out.push_back(e);
    }
    return out;
  }

  // Waits until the connection from `peer` has a kClosed event; returns its
  // events, or an empty vector if `deadline` passes first.
  std::vector<ConnectionEvent> WaitForClosed(const std::string& peer, absl::Time deadline) const {
    std::unique_lock<std::mutex> lock(mu_);
    auto closed = [this, &peer] {
      for (const ConnectionEvent& e : events_) {
        if (e.type == ConnectionEvent::Type::kClosed && e.connection.peer == peer) return true;
      }
      return false;
    };
    const auto wait = std::chrono::nanoseconds(absl::ToInt64Nanoseconds(deadline - absl::Now()));
    if (!changed_.wait_for(lock, wait, closed)) return {};
    std::vector<ConnectionEvent> out;
    for (const ConnectionEvent& e : events_) {
      if (e.connection.peer == peer) out.push_back(e);
    }
    return out;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }

  // "opened:accept", "read", ..., "closed:peer_closed": one word per event,
  // easy to compare and to read in a failure message.
  static std::vector<std::string> Describe(const std::vector<ConnectionEvent>& events) {
    std::vector<std::string> out;
    for (const ConnectionEvent& e : events) {
      switch (e.type) {
        case ConnectionEvent::Type::kOpened:
          out.push_back(absl::StrCat("opened:", ConnectionStateName(e.connection.state)));
          break;
        case ConnectionEvent::Type::kStateChanged:
          out.push_back(std::string(ConnectionStateName(e.connection.state)));
          break;
        case ConnectionEvent::Type::kClosed: out.push_back(absl::StrCat("closed:", CloseReasonName(e.reason))); break;
      }
    }
    return out;
  }

 private:
  const bool wants_state_changes_;
  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::vector<ConnectionEvent> events_;  // guarded by mu_
};

}  // namespace gateway::testing
