// The I/O back-end seam: register fds with an interest set, wait for events,
// and move a connection's bytes. One implementation per IO model: select,
// poll, epoll (level- or edge-triggered), io_uring (completion-based) and
// signal-driven; MakePoller builds one.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gateway/types.h"

namespace gateway {

// Receives readiness for one fd. Loop-thread only.
class PollHandler {
 public:
  virtual ~PollHandler() = default;
  // `ready` is a mask of Poller::kReadable / kWritable / kHangup. Hang-ups and
  // errors also set both of the others, so the next read or write surfaces
  // the cause.
  virtual void OnReady(uint32_t ready) = 0;
};

// What an fd is, so a back-end can watch it the right way (io_uring: a
// multishot receive for a stream, a multishot accept for a listener, a
// multishot poll for anything else).
enum class FdRole : uint8_t { kStream, kListener, kNotify };

// Loop-thread only (created on the loop thread too: io_uring's SINGLE_ISSUER
// ties a ring to the thread that made it); owned by EventLoop. Does not own
// the fds.
//
// Connections make their socket calls through the poller, never directly, so
// that a back-end decides how bytes move (a completion-based one serves reads
// from buffers the kernel already filled and queues sends) without a change
// to the connection. The defaults are the plain non-blocking syscalls a
// readiness back-end needs; they return what the syscall returns, with errno
// set on -1 (EINTR included: callers retry).
class Poller {
 public:
  static constexpr uint32_t kReadable = 1;
  static constexpr uint32_t kWritable = 2;
  static constexpr uint32_t kHangup = 4;  // the peer shut down its side, or an error

  struct Event {
    PollHandler* handler;
    uint32_t ready;
  };

  // What a back-end held for one fd when it was retired (a live switch):
  // bytes it received that the connection has not read, and what the peer
  // did after them; bytes it took from the connection but has not sent.
  // Readiness back-ends hold nothing; io_uring holds both.
  struct Leftovers {
    std::string unread;
    bool eof = false;  // the peer's FIN came after `unread`
    int error = 0;     // or this socket error (errno value)
    std::string unsent;
    std::vector<int> accepted;  // a listener: connections accepted, not yet taken
  };

  virtual ~Poller() = default;
  virtual IoModel model() const = 0;
  // How readiness is reported: kEdge = once per change (epoll ET, io_uring,
  // signals: a handler must read until EAGAIN), kLevel = while it lasts.
  virtual TriggerMode mode() const = 0;
  // epoll only (the others ignore it): changes how later Add()/Modify()
  // calls register fds; existing fds keep their registration until modified.
  virtual void set_mode(TriggerMode /*mode*/) {}
  // `interest` is a mask of kReadable / kWritable.
  virtual absl::Status Add(int fd, PollHandler* handler, uint32_t interest, FdRole role = FdRole::kStream) = 0;
  virtual absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) = 0;
  // Waits up to `timeout_ms` (-1: forever) and fills `events`. Returns the
  // number of events; 0 on timeout or EINTR.
  virtual int Wait(int timeout_ms, std::vector<Event>* events) = 0;

  // accept4(2), non-blocking and close-on-exec: the new fd, -1 with errno.
  virtual int Accept(int listen_fd, sockaddr* peer, socklen_t* peer_len);
  // readv(2): bytes read, 0 at EOF, -1 with errno (EAGAIN: nothing now).
  // Bytes carried over from a retired back-end (Carry) come first.
  virtual ssize_t Readv(int fd, const iovec* iov, int iov_count);
  // send(2) without SIGPIPE: bytes taken, -1 with errno (EAGAIN: full now).
  virtual ssize_t Send(int fd, const char* data, size_t len);
  // shutdown(SHUT_WR): our FIN. 0 or -1 with errno.
  virtual int ShutdownWrite(int fd);
  // Closes a connection's fd (which also ends its registration).
  virtual void Close(int fd);

  // --- Live switching (loop thread, between two turns). ---
  // Retiring: stop everything in flight and wait for it (io_uring cancels
  // its operations and reaps their completions, keeping the bytes they
  // brought); afterwards no handler is called again.
  virtual void Quiesce() {}
  // After Quiesce(): what this back-end holds for `fd` (see Leftovers); the
  // fd is no longer watched here.
  virtual Leftovers Release(int fd);
  // The new back-end: `unread` (then `eof` / `error`) is what Readv returns
  // for `fd` before anything the socket holds.
  void Carry(int fd, std::string unread, bool eof, int error);

 protected:
  // Readv's prologue for back-ends that override it.
  bool has_carry() const { return carried_ != nullptr; }
  // Serves `fd`'s carried bytes; false (and nothing done) if it has none.
  bool ReadCarried(int fd, const iovec* iov, int iov_count, ssize_t* result);
  void DropCarried(int fd);  // the fd is closing

 private:
  struct Carried {
    std::string unread;
    size_t offset = 0;
    bool eof = false;
    int error = 0;
  };
  // Null unless some fd has carried bytes (only just after a switch), so the
  // read path pays one pointer test.
  std::unique_ptr<absl::flat_hash_map<int, Carried>> carried_;
};

// A poller for `model` (select, poll, epoll, io_uring or signal), or why it
// cannot be made here (io_uring refused by the kernel or a seccomp profile:
// FAILED_PRECONDITION with the errno and the fix). Call on the thread that
// will use it. `trigger_mode` applies to epoll.
absl::StatusOr<std::unique_ptr<Poller>> MakePoller(IoModel model, TriggerMode trigger_mode);

// Whether `model` can run here (io_uring: a ring can be set up), without
// keeping anything. Any thread.
absl::Status ProbeIoModel(IoModel model);

}  // namespace gateway
