// One connection from a reactor to a backend, carrying many clients'
// requests pipelined: a FIFO of what was sent matches each response to its
// request (responses come back in the order requests went out).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "gateway/poller.h"
#include "gateway/upstream_link.h"
#include "gateway/upstream_types.h"

namespace gateway {

class UpstreamPool;
struct PoolBackend;

// Loop-thread only; owned by its backend's entry in the reactor's pool.
//
// Requests are appended to one output buffer during a loop turn and leave
// in one send() at its end (write combining). A request counts as written
// once its last byte is taken by the socket; on a failure the written ones
// get the error response and the others go back to the pool to be sent
// elsewhere (a backend never saw them whole).
class UpstreamConnection final : public PollHandler {
 public:
  enum class Phase : uint8_t { kIdle, kConnecting, kConnected };

  UpstreamConnection(UpstreamPool* pool, PoolBackend* backend);
  ~UpstreamConnection() override;
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  Phase phase() const { return phase_; }
  int fd() const { return fd_; }
  // Requests queued or written and not answered (timed-out ones included:
  // their late responses still have to be matched).
  size_t queued() const { return fifo_.size(); }
  // Requests written and not answered nor timed out.
  size_t live_inflight() const { return written_count_ - timed_out_count_; }
  bool has_room() const;
  int64_t retry_at_ns() const { return retry_at_ns_; }

  // Starts a non-blocking connect (kIdle only). Failures are reported
  // through the pool, never from inside this call.
  void Connect(int64_t now_ns);
  // Appends a request; it leaves with the next Flush().
  void Queue(std::shared_ptr<ClientLink> link, uint64_t seq, absl::string_view frame, int64_t submit_ns);
  // One send() of everything queued (connected only), after reading what
  // a spent read budget left behind.
  void Service();
  bool& dirty() { return dirty_; }  // on the pool's list to service this turn
  // The connect finished (from the pool's connector): 0 or an errno.
  void OnConnected(int err);
  // Times out what is due: written requests get the error response (the
  // connection stays; their late responses are dropped); a connect, or a
  // request the backend has not even taken, overdue closes the connection.
  void Expire(int64_t now_ns);
  // The earliest deadline this connection has, INT64_MAX if none.
  int64_t NextDeadlineNs() const;
  // Closes (if open) and hands back what never reached the backend.
  void Shutdown();
  // Live switches of the loop's back-end.
  void OnTriggerModeChanged();
  void MoveToNewPoller(Poller::Leftovers leftovers);

 private:
  struct Entry {
    std::shared_ptr<ClientLink> link;
    uint64_t seq;
    uint64_t start;  // offsets in the byte stream sent on this connection
    uint64_t end;
    int64_t submit_ns;
    int64_t written_ns = 0;
    bool timed_out = false;
  };

  void OnReady(uint32_t ready) override;
  void ReadResponses();
  void Flush();
  // Matches the whole frames in [data, data+len) to the FIFO; the bytes
  // consumed, or -1 after a protocol error (the connection has failed).
  ssize_t MatchResponses(const char* data, size_t len);
  // Closes the connection: written requests get `error`, the rest go back to
  // the pool; the backend is told.
  void Fail(UpstreamError error, std::string detail);
  void CountWritten(int64_t now_ns);
  void Compact();
  void SetPhase(Phase phase);
  void CloseFd();  // through the poller once registered with it

  UpstreamPool* const pool_;
  PoolBackend* const backend_;
  int fd_ = -1;
  Phase phase_ = Phase::kIdle;
  int64_t connect_deadline_ns_ = 0;
  int64_t retry_at_ns_ = 0;  // kIdle after a failure: no connect before this
  bool registered_ = false;  // with the loop's poller (connected only)
  bool readable_ = false;
  bool writable_ = false;
  bool dirty_ = false;

  std::deque<Entry> fifo_;
  size_t written_count_ = 0;    // fifo_'s front entries whose last byte was sent
  size_t timed_out_count_ = 0;  // fifo_'s front entries answered with a timeout error
  std::string out_;             // stream bytes from out_base_ on
  uint64_t out_base_ = 0;
  uint64_t sent_ = 0;      // stream bytes taken by the socket
  uint64_t appended_ = 0;  // stream bytes queued
  uint64_t frames_since_flush_ = 0;
  std::string in_;  // response bytes not yet matched
};

}  // namespace gateway
