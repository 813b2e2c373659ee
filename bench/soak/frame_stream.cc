#include "bench/soak/frame_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace soak {
namespace {

constexpr size_t kReadBufSize = 64 * 1024;
constexpr int kMaxIov = 64;

// Sizes where the gateway's buffering changes: a header split across reads,
// the 8 KiB adopt threshold, powers of two, the largest frames.
constexpr uint32_t kEdgeSizes[] = {1,     2,     3,     4,     5,     6,     8191,  8192,  8193,
                                   16383, 16384, 65535, 65536, 65537, 99994, 99995, 99998, 99999};

}  // namespace

SoakPattern::SoakPattern(uint64_t seed) {
  std::mt19937_64 rng(seed);
  bytes_.resize(kOffsets + kMaxPayload);
  for (char& c : bytes_) c = static_cast<char>(rng() & 0xff);
  reversed_.assign(bytes_.rbegin(), bytes_.rend());
}

uint32_t PickPayloadSize(std::mt19937_64& rng) {
  const auto between = [&rng](uint32_t lo, uint32_t hi) { return lo + static_cast<uint32_t>(rng() % (hi - lo + 1)); };
  const uint32_t bucket = static_cast<uint32_t>(rng() % 100);
  if (bucket < 40) return between(1, 64);
  if (bucket < 65) return between(65, 1024);
  if (bucket < 80) return between(1025, 16384);
  if (bucket < 90) return between(16385, 65536);
  if (bucket < 97) return between(65537, kMaxPayload);
  return kEdgeSizes[rng() % (sizeof kEdgeSizes / sizeof kEdgeSizes[0])];
}

FrameStream::FrameStream(const SoakPattern* pattern, int fd) : pattern_(pattern), fd_(fd) {}

FrameStream::~FrameStream() {
  if (fd_ >= 0) close(fd_);
}

void FrameStream::Enqueue(uint32_t size, uint32_t offset) {
  Request request{size, offset, {}};
  char header[kHeaderSize + 1];
  std::snprintf(header, sizeof header, "%05u", size);
  std::memcpy(request.header, header, kHeaderSize);
  requests_.push_back(request);
  outstanding_bytes_ += kHeaderSize + size;
}

FrameStream::Result FrameStream::Fail(int err) {
  last_errno_ = err;
  return err == ECONNRESET || err == EPIPE ? Result::kReset : Result::kError;
}

FrameStream::Result FrameStream::Send(uint64_t* completed) {
  while (send_index_ < requests_.size()) {
    iovec iov[kMaxIov];
    int count = 0;
    size_t skip = send_pos_;
    for (size_t i = send_index_; i < requests_.size() && count + 2 <= kMaxIov; ++i) {
      const Request& r = requests_[i];
      if (skip < kHeaderSize) {
        iov[count++] = iovec{const_cast<char*>(r.header + skip), kHeaderSize - skip};
        skip = 0;
      } else {
        skip -= kHeaderSize;
      }
      iov[count++] = iovec{const_cast<char*>(pattern_->Request(r.offset) + skip), r.size - skip};
      skip = 0;
    }
    msghdr message{};
    message.msg_iov = iov;
    message.msg_iovlen = static_cast<size_t>(count);
    const ssize_t n = sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Result::kOk;
      return Fail(errno);
    }
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      const size_t frame = kHeaderSize + requests_[send_index_].size;
      const size_t take = std::min(left, frame - send_pos_);
      send_pos_ += take;
      left -= take;
      if (send_pos_ == frame) {
        send_pos_ = 0;
        ++send_index_;
        ++sent_;
        if (completed != nullptr) ++*completed;
      }
    }
  }
  return Result::kOk;
}

FrameStream::Result FrameStream::Receive(uint64_t* answered, int max_reads) {
  thread_local char buffer[kReadBufSize];
  for (int i = 0; i < max_reads; ++i) {
    const ssize_t n = recv(fd_, buffer, sizeof buffer, 0);
    if (n == 0) return Result::kEof;
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Result::kOk;
      return Fail(errno);
    }
    const Result verified = Verify(buffer, static_cast<size_t>(n), answered);
    if (verified != Result::kOk) return verified;
  }
  return Result::kOk;
}

FrameStream::Result FrameStream::Verify(const char* data, size_t len, uint64_t* answered) {
  while (len > 0) {
    if (requests_.empty() || send_index_ == 0) {
      error_ = absl::StrFormat("%u response byte(s) with no request written in full (answered %u)", len, answered_);
      return Result::kCorrupt;
    }
    const Request& r = requests_.front();
    const size_t frame = kHeaderSize + r.size;
    const size_t take = std::min(len, frame - recv_pos_);
    size_t checked = 0;
    if (recv_pos_ < kHeaderSize) {
      const size_t h = std::min(take, kHeaderSize - recv_pos_);
      if (std::memcmp(data, r.header + recv_pos_, h) != 0) {
        error_ = absl::StrFormat("response %u: header mismatch at byte %u (expected %s)", answered_, recv_pos_,
                                 std::string(r.header, kHeaderSize));
        return Result::kCorrupt;
      }
      checked = h;
    }
    if (take > checked) {
      const size_t payload_pos = recv_pos_ + checked - kHeaderSize;
      const char* expected = pattern_->Response(r.offset, r.size) + payload_pos;
      if (std::memcmp(data + checked, expected, take - checked) != 0) {
        size_t at = 0;
        while (data[checked + at] == expected[at]) ++at;
        error_ =
            absl::StrFormat("response %u (payload %u bytes): byte %u differs", answered_, r.size, payload_pos + at);
        return Result::kCorrupt;
      }
    }
    recv_pos_ += take;
    data += take;
    len -= take;
    if (recv_pos_ == frame) {
      recv_pos_ = 0;
      outstanding_bytes_ -= frame;
      requests_.pop_front();
      --send_index_;
      ++answered_;
      if (answered != nullptr) ++*answered;
    }
  }
  return Result::kOk;
}

int ConnectTo(const sockaddr_in& addr, int timeout_ms) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return fd;
  if (errno != EINPROGRESS) {
    const int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  if ((WaitFor(fd, POLLOUT, timeout_ms) & (POLLOUT | POLLERR | POLLHUP)) == 0) {
    close(fd);
    errno = ETIMEDOUT;
    return -1;
  }
  int err = 0;
  socklen_t err_len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) err = errno;
  if (err != 0) {
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

void ArmReset(int fd) {
  const linger abort_on_close{1, 0};
  // If SO_LINGER cannot be set the close is a FIN: still a valid close.
  (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
}

void ResetClose(int fd) {
  ArmReset(fd);
  close(fd);
}

std::string LocalAddress(int fd) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return "";
  char ip[INET_ADDRSTRLEN];
  if (inet_ntop(AF_INET, &local.sin_addr, ip, sizeof ip) == nullptr) return "";
  return absl::StrCat(ip, ":", ntohs(local.sin_port));
}

short WaitFor(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = poll(&p, 1, timeout_ms);
    if (r > 0) return p.revents;
    if (r == 0) return 0;
    if (errno != EINTR) return POLLERR;
  }
}

FrameStream::Result Pump(FrameStream& stream, int timeout_ms, uint64_t* answered) {
  if (stream.wants_write()) {
    const FrameStream::Result sent = stream.Send();
    if (sent != FrameStream::Result::kOk) return sent;
  }
  const short events = static_cast<short>(POLLIN | (stream.wants_write() ? POLLOUT : 0));
  const short ready = WaitFor(stream.fd(), events, timeout_ms);
  if (ready == 0) return FrameStream::Result::kOk;
  if (ready & POLLOUT) {
    const FrameStream::Result sent = stream.Send();
    if (sent != FrameStream::Result::kOk) return sent;
  }
  if (ready & (POLLIN | POLLERR | POLLHUP)) return stream.Receive(answered);
  return FrameStream::Result::kOk;
}

}  // namespace soak
