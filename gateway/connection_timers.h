// The deadlines of a reactor's connections: idle, linger and frame timeouts.
#pragma once

#include <cstdint>
#include <list>

#include "gateway/options.h"

namespace gateway {

class Connection;

// Loop-thread only; one per reactor. Every connection of a list has the same
// timeout, so appending keeps each list in deadline order and finding what
// expired costs O(1) per connection (no heap, no per-connection timer).
class ConnectionTimers {
 public:
  // A connection's places in the lists; only ConnectionTimers reads or
  // writes them.
  struct Links {
    enum class List : uint8_t { kNone, kIdle, kLinger };
    List list = List::kNone;
    std::list<Connection*>::iterator pos;  // in the idle or linger list
    int64_t linked_ns = 0;                 // when last (re)linked there
    bool in_frame_list = false;
    std::list<Connection*>::iterator frame_pos;
    int64_t frame_started_ns = 0;
  };

  explicit ConnectionTimers(const ReactorOptions& options);

  // The idle timer starts (if idle timeouts are on).
  void Opened(Connection* connection, int64_t now_ns);
  // Traffic: pushes back the idle deadline. Relinks at most once per
  // granule (a 64th of the timeout, 1..250 ms), not on every read.
  void Touched(Connection* connection, int64_t now_ns);
  // EOF sent: the idle timer gives way to the linger timer.
  void StartLinger(Connection* connection, int64_t now_ns);
  // The first byte of a frame arrived (or reading resumed with a frame
  // begun): its deadline starts now.
  void FrameStarted(Connection* connection, int64_t now_ns);
  void FrameDone(Connection* connection);  // no frame pending any more
  void Forget(Connection* connection);     // closed: off every list

  // The earliest deadline, or INT64_MAX if there is none.
  int64_t NextDeadlineNs() const;
  // Closes the connections whose deadline is at or before `now_ns`.
  void Expire(int64_t now_ns);

 private:
  const int64_t idle_timeout_ns_;
  const int64_t linger_ns_;
  const int64_t frame_timeout_ns_;
  const int64_t idle_granularity_ns_;
  std::list<Connection*> idle_list_;    // by time of last relink, oldest first
  std::list<Connection*> linger_list_;  // by time lingering began
  std::list<Connection*> frame_list_;   // by time the pending frame began
};

}  // namespace gateway
