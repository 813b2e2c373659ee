// Setting up an io_uring for the io_uring back-end: the ring (with the
// newest task-running flags the kernel takes), the probe MakePoller and
// --io_model use, and the provided-buffer ring multishot receives fill.
#pragma once

#include <liburing.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace gateway {

// Submission queue entries per ring; the completion queue gets four times as
// many (IORING_SETUP_CQSIZE), since multishot operations post bursts of
// completions for one submission.
inline constexpr unsigned kUringSqEntries = 1024;
inline constexpr unsigned kUringCqEntries = 4 * kUringSqEntries;

// Sets up `ring` with SINGLE_ISSUER|DEFER_TASKRUN, falling back to
// COOP_TASKRUN, then to no task-running flag, where the kernel says EINVAL.
// Call on the thread that will submit (SINGLE_ISSUER). Returns 0 or -errno.
int SetUpUring(io_uring* ring);

// FAILED_PRECONDITION for a failed io_uring_setup: the errno, and what to do.
absl::Status UringSetupError(int err);

// Whether a ring can be set up here, keeping nothing. Any thread.
absl::Status ProbeUring();

// The provided-buffer ring: kCount buffers of kSize bytes, registered as
// buffer group kGroup, that the kernel picks from for every multishot
// receive. Shared by all of a poller's connections, so an idle connection
// holds no receive buffer. Loop-thread only; owned by UringPoller.
//
// 4 KiB buffers: one page, larger than most frames (the protocol's requests
// are typically tens of bytes), so one completion usually carries a whole
// request; bigger ones arrive as several in order. 1024 of them (4 MiB of
// address space per reactor, resident only as used) cover 64 connections
// each holding the per-connection cap of unread bytes, and far more that
// read what arrives.
class UringBufferRing {
 public:
  static constexpr uint32_t kCount = 1024;  // a power of two (buffer ring rule)
  static constexpr uint32_t kSize = 4096;
  static constexpr uint16_t kGroup = 0;

  UringBufferRing() = default;
  UringBufferRing(const UringBufferRing&) = delete;
  UringBufferRing& operator=(const UringBufferRing&) = delete;
  ~UringBufferRing();

  // Allocates the ring and the buffers (page-aligned) and registers them
  // with `ring`: what io_uring_setup_buf_ring (liburing 2.4) does. 0 or -errno.
  int Register(io_uring* ring);
  void Unregister(io_uring* ring);
  // The kernel may still write into the buffers: never free them.
  void Leak() { leaked_ = true; }

  const char* data(uint16_t bid) const { return buffers_ + static_cast<size_t>(bid) * kSize; }
  // A completion handed buffer `bid` to us.
  void Taken() { ++held_; }
  // Gives buffer `bid` back to the kernel.
  void Return(uint16_t bid);
  // Buffers the kernel can still pick.
  uint32_t available() const { return kCount - held_; }

 private:
  io_uring_buf_ring* ring_ = nullptr;
  char* buffers_ = nullptr;
  uint32_t held_ = 0;
  bool registered_ = false;
  bool leaked_ = false;
};

}  // namespace gateway
