// The soak driver's verified client side of one connection. SoakPattern holds
// one run's random payload bytes (every byte value, NUL, CR and LF included)
// and their reverse, so a request is a slice of the pattern and its correct
// response is a slice of the reversed pattern. FrameStream keeps a
// connection's requests in order (queued, being written, awaiting their
// responses) and checks every response byte as it arrives, so a response that
// is wrong, early, out of order or truncated is caught at its first bad byte.
// PickPayloadSize draws sizes from 1..99999, heavy on small ones, with the
// sizes where the gateway's buffering changes (header splits, the 8 KiB adopt
// threshold, 64 KiB, the maximum) over-represented.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <random>
#include <string>

namespace soak {

inline constexpr int kHeaderSize = 5;
inline constexpr uint32_t kMaxPayload = 99999;

// Immutable after construction; safe to share between threads.
class SoakPattern {
 public:
  static constexpr uint32_t kOffsets = 256 * 1024;  // distinct slice starts

  explicit SoakPattern(uint64_t seed);

  // A random place in the pattern for a payload of any size.
  static uint32_t RandomOffset(std::mt19937_64& rng) { return static_cast<uint32_t>(rng() % kOffsets); }
  const char* Request(uint32_t offset) const { return bytes_.data() + offset; }
  // The reversed payload of the request of `size` bytes at `offset`.
  const char* Response(uint32_t offset, uint32_t size) const {
    return reversed_.data() + (reversed_.size() - offset - size);
  }

 private:
  std::string bytes_;     // kOffsets + kMaxPayload random bytes
  std::string reversed_;  // bytes_ reversed
};

// A payload size in 1..kMaxPayload: about 40% up to 64 B, 25% up to 1 KiB,
// 15% up to 16 KiB, 10% up to 64 KiB, 7% above, 3% edge sizes.
uint32_t PickPayloadSize(std::mt19937_64& rng);

// Thread-compatible: one thread drives it. Owns the socket (non-blocking).
class FrameStream {
 public:
  enum class Result {
    kOk,       // progress or nothing to do (EAGAIN)
    kEof,      // the peer closed its side (reads only)
    kReset,    // ECONNRESET / EPIPE
    kError,    // another socket error (see last_errno())
    kCorrupt,  // a response byte that is not the expected one (see error())
  };

  FrameStream(const SoakPattern* pattern, int fd);
  ~FrameStream();
  FrameStream(const FrameStream&) = delete;
  FrameStream& operator=(const FrameStream&) = delete;

  int fd() const { return fd_; }
  // Queues a request; Send() writes it.
  void Enqueue(uint32_t size, uint32_t offset);
  // Writes queued requests until the socket is full or nothing is left.
  // `completed`, if given, is increased by the requests written in full.
  Result Send(uint64_t* completed = nullptr);
  // Reads until EAGAIN, EOF or an error (at most `max_reads` reads),
  // verifying every byte. `answered`, if given, is increased by the
  // responses completed.
  Result Receive(uint64_t* answered = nullptr, int max_reads = 16);

  bool wants_write() const { return send_index_ < requests_.size(); }
  // Requests queued or written and not yet answered.
  size_t outstanding() const { return requests_.size(); }
  // Requests written (in full or in part) and not yet answered.
  size_t in_flight() const { return send_index_ + (send_pos_ > 0 ? 1 : 0); }
  // Payload + header bytes of the outstanding requests.
  uint64_t outstanding_bytes() const { return outstanding_bytes_; }
  // True when no response has been partly received.
  bool at_frame_boundary() const { return recv_pos_ == 0; }
  uint64_t answered() const { return answered_; }
  uint64_t sent() const { return sent_; }
  int last_errno() const { return last_errno_; }
  const std::string& error() const { return error_; }

 private:
  struct Request {
    uint32_t size;
    uint32_t offset;
    char header[kHeaderSize];
  };

  Result Fail(int err);
  // Checks `len` received bytes against the outstanding responses.
  Result Verify(const char* data, size_t len, uint64_t* answered);

  const SoakPattern* pattern_;
  int fd_;
  std::deque<Request> requests_;  // in order: [0, send_index_) written, the rest queued
  size_t send_index_ = 0;         // next request to write
  size_t send_pos_ = 0;           // bytes of requests_[send_index_] already written
  size_t recv_pos_ = 0;           // bytes of requests_.front()'s response verified
  uint64_t outstanding_bytes_ = 0;
  uint64_t answered_ = 0;
  uint64_t sent_ = 0;
  int last_errno_ = 0;
  std::string error_;
};

// Connects to `addr` (blocking, at most `timeout_ms`); returns a non-blocking
// socket or -1 with errno set.
int ConnectTo(const sockaddr_in& addr, int timeout_ms);
// Sets SO_LINGER 0 on `fd`: its close will send an RST.
void ArmReset(int fd);
// Closes `fd` with SO_LINGER 0: the peer gets an RST.
void ResetClose(int fd);
// "ip:port" of the socket's local end, as the gateway lists its peer.
std::string LocalAddress(int fd);
// Waits up to `timeout_ms` for `events` on `fd`; returns poll's revents (0 on
// timeout).
short WaitFor(int fd, short events, int timeout_ms);
// One step of driving a single stream: waits up to `timeout_ms` for it to be
// readable (or writable while it has requests to write), then writes and
// reads what it can. kOk on progress or timeout.
FrameStream::Result Pump(FrameStream& stream, int timeout_ms, uint64_t* answered = nullptr);

}  // namespace soak
