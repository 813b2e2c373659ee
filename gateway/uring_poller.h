// The io_uring back-end: completion-based, not a readiness poller in
// disguise. Streams get a multishot receive into a buffer ring shared by the
// whole poller, listeners a multishot accept, the loop's eventfd a multishot
// poll; sends are SQEs from a per-connection queue. Everything prepared
// during a loop turn is submitted by the one io_uring_enter of the next
// Wait(), which also waits and reaps.
#pragma once

#include <liburing.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "gateway/poller.h"
#include "gateway/uring_setup.h"

namespace gateway {

// Loop-thread only (SINGLE_ISSUER: created on the loop thread); owned by
// EventLoop. Does not own registered fds, except that a Close() with sends
// still queued keeps the fd open until they are out.
class UringPoller final : public Poller {
 public:
  // Unread bytes held per stream before its receive is cancelled (re-armed
  // once Readv drains them): one connection cannot take the whole buffer
  // ring, and a connection that stops reading stops receiving. Half the
  // connection's read scratch, so one Readv empties it.
  static constexpr uint32_t kRecvCap = 64 * 1024;
  // Bytes queued for sending per stream: Send takes what fits under it, and
  // says EAGAIN when nothing does (the role of a socket's send buffer; the
  // connection's own high-water mark is of the same size). Not counted in
  // the gateway's queued-bytes budget.
  static constexpr size_t kSendCap = 256 * 1024;

  // FAILED_PRECONDITION (with the errno and the fix) if the kernel refuses.
  static absl::StatusOr<std::unique_ptr<UringPoller>> Create();
  ~UringPoller() override;

  IoModel model() const override { return IoModel::kIoUring; }
  TriggerMode mode() const override { return TriggerMode::kEdge; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest, FdRole role) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;

  int Accept(int listen_fd, sockaddr* peer, socklen_t* peer_len) override;
  ssize_t Readv(int fd, const iovec* iov, int iov_count) override;
  ssize_t Send(int fd, const char* data, size_t len) override;
  int ShutdownWrite(int fd) override;
  void Close(int fd) override;

  void Quiesce() override;
  Leftovers Release(int fd) override;

  // What the receive side did, for tests and the lab report.
  struct Counters {
    uint64_t cap_cancels = 0;   // receives stopped at kRecvCap unread bytes
    uint64_t enobufs = 0;       // receives ended because the buffer ring was empty
    uint32_t free_buffers = 0;  // in the ring now
  };
  Counters counters() const {
    Counters c = counters_;
    c.free_buffers = buffers_.available();
    return c;
  }

 private:
  enum class Op : uint8_t { kRecv = 1, kSend, kAccept, kPoll, kCancel };

  // Received bytes not read yet: part of one ring buffer.
  struct Chunk {
    uint16_t bid;
    uint16_t offset;
    uint32_t len;
  };
  // Bytes taken by Send and not sent; exists only while there are some.
  struct Sends {
    std::string sending;  // the send in flight (the kernel reads it: never touched meanwhile)
    size_t sent = 0;      // of `sending`
    std::string queued;   // taken since, sent next
    bool in_flight = false;
    size_t pending() const { return sending.size() - sent + queued.size(); }
  };
  struct FdState {
    PollHandler* handler = nullptr;  // null once closed (a deferred close still sends)
    std::unique_ptr<Sends> sends;
    // Unread, in order, from `head`. Two inline: a connection that reads
    // what arrives never allocates, and one that has read all holds nothing.
    absl::InlinedVector<Chunk, 2> chunks;
    uint32_t head = 0;
    uint32_t queued = 0;  // unread bytes in chunks
    uint32_t gen = 0;     // bumped whenever the fd is (re)registered or forgotten
    int recv_error = 0;
    int send_error = 0;
    FdRole role = FdRole::kStream;
    uint8_t ready = 0;  // kReadable/kWritable/kHangup to report at the end of Wait
    bool active = false;
    bool armed = false;       // the multishot (recv, accept or poll) has not ended
    bool cancelling = false;  // a cancel for it has been prepared
    bool eof = false;
    bool waiting_buffers = false;  // its receive ended on ENOBUFS
    bool want_writable = false;    // Send said EAGAIN: report when below the cap
    bool on_send_list = false;
    bool shutdown_pending = false;  // ShutdownWrite once the sends are out
    bool close_pending = false;     // close(2) once the sends are out
    bool muted = false;             // a listener with interest 0
  };
  // 72 bytes on x86-64 (Debian 12, g++ 12): what an idle connection costs here.
  static_assert(sizeof(FdState) <= 72, "per-fd state is paid by every connection, idle or not");
  struct ListenerQueue {
    std::deque<int> accepted;
    int error = 0;  // the errno that ended the multishot accept, reported once
    // After an accept error (EMFILE: io_uring takes the fd number before it
    // looks for a connection, so it fails at once, with or without one):
    // watch readiness with a multishot poll and accept with accept4(2), until
    // an accept4 succeeds and then finds the backlog empty.
    bool readiness = false;
    bool accepted_since_error = false;
  };

  UringPoller() = default;

  static uint64_t UserData(Op op, uint32_t gen, int fd) {
    return (static_cast<uint64_t>(op) << 56) | (static_cast<uint64_t>(gen & 0xFFFFFF) << 32) |
           static_cast<uint32_t>(fd);
  }
  FdState* Find(int fd);
  void Ready(int fd, FdState& s, uint8_t bits);
  io_uring_sqe* GetSqe();
  void SubmitNow();

  void ArmRecv(int fd, FdState& s);
  void MaybeArm(int fd, FdState& s);
  void Cancel(int fd, FdState& s);
  void StartSend(int fd, FdState& s);
  void FlushSendList();
  void RearmWaitingForBuffers();

  void Reap();
  void HandleCqe(uint64_t user_data, int res, uint32_t flags);
  void OnRecv(int fd, FdState& s, int res, uint32_t flags);
  void OnSend(int fd, FdState& s, int res);
  void OnAccept(int fd, FdState& s, int res);
  void SendsDone(int fd, FdState& s);
  void SendFailed(int fd, FdState& s, int err);

  void DropChunks(FdState& s);
  void Forget(int fd);  // resets the fd's state (new generation); closes nothing
  void CloseNow(int fd);
  void CancelAllAndReap();
  // Prepares a cancel of the operation(s) matching `target` (see
  // io_uring_prep_cancel64); its completion only counts down in_flight_.
  void PrepareCancel(uint64_t target, uint32_t flags = 0);
  // Sends what deferred closes and shutdowns (and, if asked, any stream)
  // still queue with plain non-blocking sends, bounded in time, then closes
  // or shuts down.
  void FinishDeferred(bool flush_open_streams);
  bool OnOwnerThread() const { return std::this_thread::get_id() == owner_; }
  void TearDownOffThread();
  static void KeepForever(std::unique_ptr<Sends> sends);

  io_uring ring_{};
  bool ring_ready_ = false;
  // The thread that made the ring: the only one the kernel lets submit or
  // wait (SINGLE_ISSUER, DEFER_TASKRUN). A reactor's loop is destroyed on
  // another thread once it has stopped.
  std::thread::id owner_ = std::this_thread::get_id();
  UringBufferRing buffers_;
  std::vector<FdState> fds_;  // indexed by fd
  absl::flat_hash_map<int, ListenerQueue> listeners_;
  std::vector<int> ready_fds_;                            // fds whose `ready` is non-zero
  std::vector<int> send_list_;                            // fds with queued sends and none in flight
  std::deque<std::pair<int, uint32_t>> waiting_buffers_;  // (fd, gen) whose receive ran out of buffers
  uint32_t in_flight_ = 0;  // operations prepared whose last completion has not been reaped
  bool quiescing_ = false;  // no new operations
  bool quiesced_ = false;
  bool kernel_may_touch_memory_ = false;
  Counters counters_;  // an fd was closed off-thread with an operation armed
};

}  // namespace gateway
