// One client connection: the per-fd state machine
//   accept -> read -> process -> write -> read, and closing,
// with the have/need counters the control plane reports.
#pragma once

#include <cstdint>
#include <list>
#include <vector>

#include "absl/time/time.h"
#include "gateway/buffer.h"
#include "gateway/poller.h"
#include "gateway/socket_util.h"
#include "gateway/types.h"

namespace gateway {

class Reactor;

// Loop-thread only; owned by its Reactor, which also owns the fd's lifetime
// through it (the destructor closes the fd).
//
// Reads land in the reactor's scratch buffer (after, in the same readv, the
// rest of a frame already begun, straight into its input buffer); complete
// frames are answered in place and sent from where they lie. Only output the
// socket does not take, and a frame not yet whole, stay in the connection's
// own buffers, which are given back as soon as they drain, so an idle
// connection holds no buffer memory.
class Connection final : public PollHandler {
 public:
  Connection(Reactor* reactor, int fd, uint64_t id, const SocketAddress& peer, int64_t now_ns);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int fd() const { return fd_; }
  uint64_t id() const { return id_; }
  ConnectionState state() const { return state_; }
  bool closed() const { return closed_; }
  int64_t last_active_ns() const { return last_active_ns_; }

  // Registers with the poller in the current trigger mode and enters READ.
  absl::Status Start();

  // Reads, answers and writes as far as the socket and the per-wakeup budget
  // allow. May close (and so schedule the destruction of) this connection.
  void Service();

  // Stops reading; delivers every response already produced, then sends EOF
  // and closes. `force` closes at once instead.
  void RequestClose(CloseReason reason, bool force);

  // Shutdown: answers what the kernel has already received (reading until the
  // socket is dry), then closes as RequestClose(kShutdown, false) does.
  void BeginDrain();

  // Re-registers after the poller's trigger mode changed. Readiness is
  // assumed, so bytes the kernel buffered under the old mode are still read.
  void OnTriggerModeChanged();

  // Closes now, with `reason`. The object is destroyed after the current
  // loop iteration; nothing else may be called on it afterwards.
  void Close(CloseReason reason);

  // The linger period after our FIN ran out.
  void LingerExpired() { Close(close_reason_); }

  ConnectionInfo Snapshot(absl::Time wall_now, int64_t mono_now_ns) const;

  // Positions in the reactor's idle and linger lists (owned by Reactor).
  std::list<Connection*>::iterator timer_pos;
  int64_t timer_pos_ns = 0;  // when it was last (re)linked into its list
  bool in_idle_list = false;
  bool in_linger_list = false;
  bool owed = false;  // on the reactor's list of connections with work left over
  // Position in the reactor's frame-deadline list (owned by Reactor).
  std::list<Connection*>::iterator frame_pos;
  int64_t frame_started_ns = 0;
  bool in_frame_list = false;
  bool waiting_for_budget = false;  // on the reactor's list of budget waiters

 private:
  void OnReady(uint32_t ready) override;
  // One readv() and everything it makes possible; `in_place_only` reads
  // only into the room the partial frame's block already has (over the
  // global buffer budget). Returns false if closed.
  bool ReadOnce(bool in_place_only);
  // Answers the frame that in_ now holds whole. Returns false if closed.
  bool AnswerInput();
  // Answers the frames in the first `len` bytes of the scratch block and keeps
  // what is left of an incomplete one in in_. Returns false if closed.
  bool AnswerScratch(size_t len);
  // Answers every complete frame in [data, data+len) in place, packing the
  // responses at the front. Returns the bytes of responses; sets `consumed`.
  size_t AnswerFrames(char* data, size_t len, size_t* consumed, uint64_t* frames, bool* bad_header);
  // Sends `len` response bytes holding `frames` frames, queueing what the
  // socket does not take. Returns false if closed.
  bool SendResponses(const char* data, size_t len, uint64_t frames);
  // Writes queued output. Returns false if closed.
  bool FlushOutput();
  // Sends until done or EAGAIN; `*sent` gets the bytes taken. Returns false
  // if the socket failed (and the connection is closed).
  bool WriteToSocket(const char* data, size_t len, size_t* sent);
  void QueueOutput(const char* data, size_t len, uint64_t frames);
  void CompleteWrites();  // counts frames whose last byte went out
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

  Reactor* const reactor_;
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

  ConnectionState state_ = ConnectionState::kAccept;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  bool readable_ = false;      // no EAGAIN on read since the last readiness
  bool writable_ = true;       // no EAGAIN on write since the last readiness
  bool read_eof_ = false;      // the peer sent FIN
  bool hangup_seen_ = false;   // FIN or error reported: read on to the end
  bool paused_ = false;        // output above the high-water mark
  bool draining_ = false;      // shutdown: answer what has arrived, then close
  bool closing_ = false;       // no more requests; close once output drains
  bool lingering_ = false;     // EOF sent; draining input until the peer closes
  bool closed_ = false;

  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t frames_in_ = 0;
  uint64_t frames_out_ = 0;
  uint64_t out_started_at_ = 0;  // bytes_out_ when out_ last went non-empty
};

}  // namespace gateway
