// One connection of the blocking IO model: the loop its own thread runs
// (blocking recv, answer every complete frame in place, blocking send, recv
// again) and the record of counters any thread may read while it runs.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "gateway/frame_handler.h"
#include "gateway/options.h"
#include "gateway/socket_util.h"
#include "gateway/types.h"

namespace gateway {

class BlockingConnection;

// What a connection thread reports to its server, which serializes the
// reports of all connection threads (the shared stats are single-writer).
class BlockingHost {
 public:
  // Counter deltas of one batch (a read and its answers, or a send).
  struct Batch {
    uint64_t bytes_in = 0;
    uint64_t frames_in = 0;
    uint64_t bytes_out = 0;
    uint64_t frames_out = 0;
    uint64_t protocol_errors = 0;
    int64_t duration_ns = -1;  // request duration of frames_out frames; < 0 = not measured
  };
  virtual ~BlockingHost() = default;
  // Applies `batch` and moves the connection through `states`, in order,
  // all under one lock.
  virtual void Report(BlockingConnection& connection, const Batch& batch,
                      std::initializer_list<ConnectionState> states) = 0;
  // The connection thread's last call: counts the close, unlists the
  // connection and closes its fd.
  virtual void Closed(BlockingConnection& connection, CloseReason reason) = 0;
};

// Run() belongs to the connection's own thread; RequestClose(), Snapshot()
// and the accessors are safe from any thread (the server calls RequestClose
// under its table lock, while the fd is still this connection's). Owned by
// the server, which joins the thread before destroying it.
class BlockingConnection {
 public:
  BlockingConnection(int fd, uint64_t id, const SocketAddress& peer, const ReactorOptions* options, BlockingHost* host,
                     std::unique_ptr<FrameHandler> handler);
  BlockingConnection(const BlockingConnection&) = delete;
  BlockingConnection& operator=(const BlockingConnection&) = delete;

  // Serves the connection until it closes; ends with host->Closed().
  void Run();
  // kFlush: stop reading once what has arrived is answered (shutdown
  // SHUT_RD), deliver, then EOF. kForce: shutdown SHUT_RDWR, which also
  // ends a send the peer does not read. The first reason asked for sticks.
  void RequestClose(CloseReason reason, CloseMode mode);

  ConnectionInfo Snapshot(absl::Time wall_now, int64_t mono_now_ns) const;
  int fd() const { return fd_; }
  uint64_t id() const { return id_; }
  ConnectionState state() const { return state_.load(std::memory_order_relaxed); }
  // The server's, under its report lock: the state gauges follow it.
  void set_state(ConnectionState state) { state_.store(state, std::memory_order_relaxed); }

  pthread_t thread{};  // set by the server before the thread can run

 private:
  // How the connection ends: why, and whether it still owes the peer a
  // graceful FIN (responses already sent; wait for the peer's FIN a while).
  struct Ending {
    CloseReason reason;
    bool graceful;
  };

  // Waits for input until the idle or frame deadline: an Ending if one
  // passed, nullopt when recv() should be called.
  std::optional<Ending> WaitReadable();
  // Answers every complete frame of the `n` bytes just read (and those
  // before them) and sends the responses; an Ending if the connection must close.
  std::optional<Ending> Answer(size_t n, int64_t read_ns);
  // Sends the responses to `frames` frames, all of them unless the
  // connection must close.
  std::optional<Ending> SendAll(const char* data, size_t len, uint64_t frames);
  // Keeps the partial frame at the front, sized for it, and its deadline.
  void Compact(size_t consumed, size_t pending_frame_size, bool new_frame, int64_t now_ns);
  // FIN after the responses, then read and drop input until the peer's FIN
  // or options.linger, so close() does not turn into a reset.
  void Linger();
  // The reason asked for by RequestClose, else `own`.
  CloseReason ReasonOr(CloseReason own) const;
  Ending ForErrno(int err) const;
  void Touch(int64_t now_ns) { last_active_ns_.store(now_ns, std::memory_order_relaxed); }

  const int fd_;
  const uint64_t id_;
  const SocketAddress peer_;
  const ReactorOptions* const options_;
  BlockingHost* const host_;
  const std::unique_ptr<FrameHandler> handler_;
  const int64_t opened_ns_;

  // Connection thread only.
  std::vector<char> buf_;  // the partial frame at the front, then free room
  size_t len_ = 0;
  size_t pending_frame_size_ = 0;  // of the partial frame; 0 while its header is incomplete
  int64_t frame_started_ns_ = 0;   // first byte of the partial frame; 0 = none

  // Written by the connection thread (state_ under the host's lock), read by any.
  std::atomic<ConnectionState> state_{ConnectionState::kAccept};
  std::atomic<int> requested_reason_{-1};  // CloseReason asked for by RequestClose; -1 = none
  std::atomic<uint64_t> have_read_{0};
  std::atomic<uint64_t> need_read_{0};
  std::atomic<uint64_t> have_write_{0};
  std::atomic<uint64_t> need_write_{0};
  std::atomic<uint64_t> bytes_in_{0};
  std::atomic<uint64_t> bytes_out_{0};
  std::atomic<uint64_t> frames_in_{0};
  std::atomic<uint64_t> frames_out_{0};
  std::atomic<int64_t> last_active_ns_;
};

}  // namespace gateway
