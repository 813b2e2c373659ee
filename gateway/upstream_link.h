// What ties a client connection to the upstream requests it made: its
// response slots in request order, shared with the upstream FIFOs that carry
// the requests, so a reply for a client that has gone finds a link with no
// connection and is dropped.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

namespace gateway {

class Connection;

// Loop-thread only (the reactor owning both the client and the upstream
// connections).
struct ClientLink {
  struct Slot {
    std::string response;  // a whole frame, header included
    int64_t read_ns = 0;   // when the request was read, for the request duration
    uint32_t request_bytes = 0;
    bool ready = false;
  };
  Connection* connection = nullptr;  // null once the client closed
  uint64_t hash = 0;                 // --upstream_lb=hash: the client's key
  uint64_t head_seq = 0;             // the request slots.front() answers
  uint64_t next_seq = 0;             // the next request's number
  // --upstream_error=close: the first failed request; replies from it on are
  // dropped and the client closes once the ones before it are delivered.
  uint64_t close_at_seq = UINT64_MAX;
  std::deque<Slot> slots;
  uint64_t slot_bytes = 0;        // the slots' requests and the answers they hold
  bool waiting_for_room = false;  // on the pool's list: reading paused, every backend full
  bool room_granted = false;      // taken off that list: reads before newcomers, until its read pass ends

  uint64_t outstanding() const {
    return close_at_seq == UINT64_MAX ? slots.size() : (close_at_seq > head_seq ? close_at_seq - head_seq : 0);
  }
};

// A request on its way to a backend: which client slot it answers.
struct UpstreamRequest {
  std::shared_ptr<ClientLink> link;
  uint64_t seq = 0;
  int64_t submit_ns = 0;
  std::string frame;  // the request frame, header included
  // Backends it already failed on: not re-dispatched to those again.
  uint32_t attempts = 0;
};

}  // namespace gateway
