// The soak's well-behaved clients, whose every request must be answered
// exactly: VerifiedTraffic (long-lived connections with pipelined frames of
// every size, never the target of anything destructive) and Churn (connect,
// one request, verify, close, over and over).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "bench/soak/scenario.h"

namespace soak {

struct TrafficOptions {
  int conns = 32;
  int max_pipeline = 16;                     // requests in flight per connection: 1..this, redrawn as it runs
  uint64_t max_inflight_bytes = 512 * 1024;  // per connection
  double mbps = 0;                           // request bytes per second over all connections, in MB; 0 = no cap
  // Backpressure: up to this fraction of the connections at a time stop
  // reading for 0.5..8 s while they pipeline up to stall_inflight_bytes. The
  // gateway then stops reading them, often with a frame half read, for longer
  // than a 5 s frame timeout: that must not count as a slow client.
  double stall_fraction = 0.125;
  uint64_t stall_inflight_bytes = 8 << 20;
  int drain_seconds = 30;  // after a stop: time allowed for the last answers
};

// See Scenario for threading. Counts frames_sent/answered, lost, corrupt.
class VerifiedTraffic : public Scenario {
 public:
  VerifiedTraffic(const SoakTarget& target, const TrafficOptions& options);
  ~VerifiedTraffic() override;

 protected:
  void Run() override;

 private:
  struct Slot;

  bool Open(Slot& slot);
  // Starts or ends the slot's stall when due.
  void UpdateStall(Slot& slot, Clock::time_point now, bool draining);
  // Queues requests up to the slot's depth and byte bound (and the byte
  // rate); false if the rate cap held some back.
  bool TopUp(Slot& slot);
  // Writes, then (re-)registers the slot's epoll interest.
  void Arm(Slot& slot, size_t index);
  void OnEvent(Slot& slot, uint32_t events);
  // Counts a connection that ended or went wrong, and closes it.
  void Drop(Slot& slot, FrameStream::Result why);
  // Answers still owed on all connections.
  size_t Owed() const;

  const TrafficOptions options_;
  const double rate_;   // bytes per second; 0 = no cap
  const double burst_;  // most tokens held
  double tokens_;
  Clock::time_point refilled_;
  int epoll_fd_ = -1;
  std::vector<Slot> slots_;
  int stalled_ = 0;
  int max_stalled_ = 0;
  int logged_ = 0;
};

// See Scenario for threading. Half of the connections send a FIN right after
// their request: the answer must still come, then EOF.
class Churn : public Scenario {
 public:
  Churn(const SoakTarget& target, double per_second) : Scenario(target, 2), per_second_(per_second) {}
  ~Churn() override { Join(); }

 protected:
  void Run() override;

 private:
  // One connection's life; counts its outcome.
  void OneConnection();

  const double per_second_;
  int logged_ = 0;
};

}  // namespace soak
