// One client connection: the per-fd state machine
//   accept -> read -> process -> write -> read, and closing,
// with the have/need counters the control plane reports.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/buffer.h"
#include "gateway/connection_host.h"
#include "gateway/connection_timers.h"
#include "gateway/poller.h"
#include "gateway/socket_util.h"
#include "gateway/types.h"
#include "gateway/upstream_link.h"

namespace gateway {

// What an I/O step left behind: the connection still open, or closed (and so
// scheduled for destruction: the caller must not touch it further).
enum class IoResult { kKeepOpen, kClosed };

// Loop-thread only; owned by its reactor's connection table, and owns its fd
// (the destructor closes it). Reaches its reactor only through its
// ConnectionContext and ConnectionHost.
//
// Reads land in the reactor's scratch block (after, in the same readv, the
// rest of a frame already begun, straight into its input buffer); complete
// frames are answered in place and sent from where they lie. Only output the
// socket does not take, and a frame not yet whole, stay in the connection's
// own buffers, which are given back as soon as they drain, so an idle
// connection holds no buffer memory.
class Connection final : public PollHandler {
 public:
  // The lifecycle, in order; a connection only moves forward.
  enum class Phase : uint8_t {
    kOpen,       // reading requests and answering them
    kDraining,   // shutdown: answering what the kernel already holds, then kClosing
    kClosing,    // no more requests; delivering the responses owed, then EOF
    kLingering,  // EOF sent; reading and dropping input until the peer's FIN (bounded)
    kClosed,     // closed; destroyed at the end of this loop turn
  };

  // Where the host queues the connection; only the host reads or writes it.
  struct HostLinks {
    bool service_later = false;       // on the host's list to service after this turn's events
    bool waiting_for_budget = false;  // stopped reading: over --max_queued_bytes
  };

  Connection(const ConnectionContext* context, int fd, uint64_t id, const SocketAddress& peer);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }
  uint64_t id() const { return id_; }
  Phase phase() const { return phase_; }
  // What the control plane reports: derived from the phase and, while open,
  // from what the connection is doing.
  ConnectionState state() const { return state_; }
  int64_t last_active_ns() const { return last_active_ns_; }
  HostLinks& host_links() { return host_links_; }

  // Registers with the poller in the current trigger mode and enters READ.
  absl::Status Start();

  // Reads, answers and writes as far as the socket and the per-wakeup budget
  // allow. May close (and so schedule the destruction of) this connection.
  void Service();

  // kFlush: stops reading; delivers every response already produced, then
  // sends EOF and closes. kForce: closes at once.
  void RequestClose(CloseReason reason, CloseMode mode);

  // Shutdown, age or rebalancing: reads on until the socket is dry (and, but
  // for a shutdown, no frame is half-read), answers everything, then closes
  // (FIN) with `reason` as RequestClose(reason, kFlush) does: a frame
  // boundary, so a client that resends what got no answer loses nothing.
  void BeginDrain(CloseReason reason);
  // Open and not yet on its way out.
  bool accepting_frames() const { return phase_ == Phase::kOpen; }
  int64_t opened_ns() const { return opened_ns_; }

  // Re-registers after the poller's trigger mode changed. Readiness is
  // assumed, so bytes the kernel buffered under the old mode are still read.
  void OnTriggerModeChanged();

  // Registers with the loop's new back-end after a live IO-model switch,
  // taking over what the retired one held (`leftovers`: bytes received but
  // not read, carried into the new back-end's reads; bytes taken but not
  // sent, queued again in front of our output). Readiness is assumed.
  void MoveToNewPoller(Poller::Leftovers leftovers);

  // Closes now, with `reason`. The object is destroyed after the current
  // loop iteration; nothing else may be called on it afterwards.
  void Close(CloseReason reason);

  // Upstream mode: the response to request `seq` (a whole frame), or the
  // error response in its place (`error`). Responses leave in request order.
  void OnUpstreamReply(uint64_t seq, absl::string_view frame, bool error);

  // The linger period after our FIN ran out.
  void LingerExpired() { Close(close_reason_); }

  ConnectionInfo Snapshot(absl::Time wall_now, int64_t mono_now_ns) const;

 private:
  friend class ConnectionTimers;  // keeps timer_links_

  // What AnswerFrames found in a run of bytes.
  struct Answered {
    size_t response_bytes = 0;  // packed at the front of the run
    size_t consumed = 0;        // bytes of whole frames (and skipped CR/LF)
    uint64_t frames = 0;
    bool bad_header = false;
  };

  void OnReady(uint32_t ready) override;
  bool open() const { return phase_ == Phase::kOpen || phase_ == Phase::kDraining; }
  // One readv() and everything it makes possible; `in_place_only` reads
  // only into the room the partial frame's block already has (over the
  // global buffer budget).
  IoResult ReadOnce(bool in_place_only);
  // Answers the frame that in_ now holds whole.
  IoResult AnswerInput();
  // Answers the frames in the first `len` bytes of the scratch block and keeps
  // what is left of an incomplete one in in_.
  IoResult AnswerScratch(size_t len);
  // Answers every complete frame in [data, data+len) in place, packing the
  // responses at the front.
  Answered AnswerFrames(char* data, size_t len);
  // Sends `len` response bytes holding `frames` frames, queueing what the
  // socket does not take. `read_ns`: when the requests were read (0: this
  // loop turn).
  IoResult SendResponses(const char* data, size_t len, uint64_t frames, int64_t read_ns = 0);
  // Upstream mode: hands a request frame to the pool, in a new slot.
  void Forward(absl::string_view frame);
  // Upstream mode: queues the answered slots at the front, in order, as
  // output (sent when the reactor services us).
  void FlushUpstreamSlots();
  // Upstream mode: reading waits (too many requests unanswered, or every
  // backend's queue full).
  bool UpstreamBlocked();
  bool UpstreamCapped() const;  // too much of this client's is unanswered
  // Nothing left to deliver: no queued output, no request unanswered.
  bool OwesNothing() const { return out_.empty() && (link_ == nullptr || link_->outstanding() == 0); }
  // Writes queued output.
  IoResult FlushOutput();
  // Sends until done or EAGAIN; `*sent` gets the bytes taken.
  IoResult WriteToSocket(const char* data, size_t len, size_t* sent);
  void QueueOutput(const char* data, size_t len, uint64_t frames, int64_t read_ns);
  // Upstream mode: fills request `seq`'s slot (or, --upstream_error=close,
  // marks where the client's responses end).
  void MarkUpstreamReply(uint64_t seq, absl::string_view frame, bool error);
  void CompleteWrites();  // counts frames whose last byte went out
  // Enters kClosing (the first reason given is kept, except that a peer's
  // FIN gives way to a more specific one).
  void StopReading(CloseReason reason);
  // After output drains on a closing connection: EOF, then linger or close.
  void FinishClosing();
  void DiscardInput();  // lingering: read and drop until EOF
  void Touch();
  void SetState(ConnectionState state);
  void UpdateState();
  void UpdateInterest();
  uint32_t DesiredInterest() const;
  void CloseForErrno(int err);

  // Output queued behind the socket, as (end offset in bytes_out_, frames,
  // read time) per batch, so frames and latency are counted when the batch's
  // last byte is written.
  struct PendingBatch {
    uint64_t end;
    uint64_t frames;
    int64_t read_ns;
  };

  const ConnectionContext* const ctx_;
  const int fd_;
  const uint64_t id_;
  const SocketAddress peer_;
  const int64_t opened_ns_;
  int64_t last_active_ns_;

  Buffer in_;   // an incomplete frame (and what follows it)
  Buffer out_;  // responses the socket has not taken yet
  std::vector<PendingBatch> pending_;
  uint32_t pending_frame_size_ = 0;  // size of the frame at in_'s front, 0 if unknown
  uint32_t registered_interest_ = 0;

  Phase phase_ = Phase::kOpen;
  ConnectionState state_ = ConnectionState::kAccept;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  CloseReason drain_reason_ = CloseReason::kShutdown;  // kDraining's
  // Readiness, as the poller last reported it (not the lifecycle).
  bool readable_ = false;     // no EAGAIN on read since the last readiness
  bool writable_ = true;      // no EAGAIN on write since the last readiness
  bool hangup_seen_ = false;  // FIN or error reported: read on to the end
  // Input flow.
  bool read_eof_ = false;  // the peer sent FIN
  bool paused_ = false;    // output above the high-water mark

  HostLinks host_links_;
  std::shared_ptr<ClientLink> link_;  // upstream mode only
  ConnectionTimers::Links timer_links_;

  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t frames_in_ = 0;
  uint64_t frames_out_ = 0;
  uint64_t out_started_at_ = 0;  // bytes_out_ when out_ last went non-empty
  // Bytes at out_'s front a retired back-end took but never sent: counted in
  // the reactor's bytes_out already, so not counted again when they go.
  uint64_t recounted_out_ = 0;
};

}  // namespace gateway
