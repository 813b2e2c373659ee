// The I/O back-end seam: register fds with an interest set, wait for events,
// and move a connection's bytes. EpollPoller, level- or edge-triggered, is
// the implementation.
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
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

// Loop-thread only; owned by EventLoop. Does not own the fds.
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

  virtual ~Poller() = default;
  virtual TriggerMode mode() const = 0;
  // Changes how later Add()/Modify() calls register fds; existing fds keep
  // their registration until modified.
  virtual void set_mode(TriggerMode mode) = 0;
  // `interest` is a mask of kReadable / kWritable.
  virtual absl::Status Add(int fd, PollHandler* handler, uint32_t interest) = 0;
  virtual absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) = 0;
  // Waits up to `timeout_ms` (-1: forever) and fills `events`. Returns the
  // number of events; 0 on timeout or EINTR.
  virtual int Wait(int timeout_ms, std::vector<Event>* events) = 0;

  // accept4(2), non-blocking and close-on-exec: the new fd, -1 with errno.
  virtual int Accept(int listen_fd, sockaddr* peer, socklen_t* peer_len);
  // readv(2): bytes read, 0 at EOF, -1 with errno (EAGAIN: nothing now).
  virtual ssize_t Readv(int fd, const iovec* iov, int iov_count);
  // send(2) without SIGPIPE: bytes taken, -1 with errno (EAGAIN: full now).
  virtual ssize_t Send(int fd, const char* data, size_t len);
  // shutdown(SHUT_WR): our FIN. 0 or -1 with errno.
  virtual int ShutdownWrite(int fd);
  // Closes a connection's fd (which also ends its registration).
  virtual void Close(int fd);
};

// Linux epoll, level- or edge-triggered.
class EpollPoller final : public Poller {
 public:
  // Aborts if epoll_create1 fails: nothing can work without it.
  explicit EpollPoller(TriggerMode mode);
  ~EpollPoller() override;

  TriggerMode mode() const override { return mode_; }
  void set_mode(TriggerMode mode) override { mode_ = mode; }
  absl::Status Add(int fd, PollHandler* handler, uint32_t interest) override;
  absl::Status Modify(int fd, PollHandler* handler, uint32_t interest) override;
  int Wait(int timeout_ms, std::vector<Event>* events) override;

 private:
  absl::Status Control(int op, int fd, PollHandler* handler, uint32_t interest);

  int epfd_;
  TriggerMode mode_;
  std::vector<struct epoll_event> raw_;
};

}  // namespace gateway
