// RstStorm paces its connections like Churn and picks one of seven ways to
// misbehave for each. Slowloris polls its tricklers every 100 ms: a byte is
// due, the gateway closed the connection (EOF or reset), or the frame is
// complete and its answer is being checked.
#include "bench/soak/abuse.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace soak {
namespace {

constexpr int kConnectTimeoutMs = 5000;
constexpr int kMaxLogged = 20;

// Writes what the socket takes of `data` without blocking; returns false on
// a socket error.
bool SendSome(int fd, const char* data, size_t len) {
  while (len > 0) {
    const ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
  }
  return true;
}

std::string Header(uint32_t size) {
  char header[kHeaderSize + 1];
  std::snprintf(header, sizeof header, "%05u", size);
  return std::string(header, kHeaderSize);
}

}  // namespace

void RstStorm::Run() {
  RunAtRate(per_second_, [this] { OneConnection(); });
}

void RstStorm::OneConnection() {
  SoakCounters& c = counters();
  const int fd = ConnectTo(target_.data, kConnectTimeoutMs);
  if (fd < 0) {
    c.rst_connect_errors.fetch_add(1);
    if (logged_++ < kMaxLogged) SOAK_LOG("rst: connect: %s\n", strerror(errno));
    return;
  }
  c.rst_conns.fetch_add(1);
  const SoakPattern& pattern = *target_.pattern;
  const uint32_t size = PickPayloadSize(rng_);
  const uint32_t offset = SoakPattern::RandomOffset(rng_);
  const std::string header = Header(size);
  switch (rng_() % 7) {
    case 0:  // nothing at all
      break;
    case 1:  // part of a header
      SendSome(fd, header.data(), 1 + rng_() % (kHeaderSize - 1));
      break;
    case 2: {  // a header and part of its payload
      SendSome(fd, header.data(), kHeaderSize);
      SendSome(fd, pattern.Request(offset), rng_() % size);
      break;
    }
    case 3: {  // whole frames, unread answers
      const int frames = 1 + static_cast<int>(rng_() % 4);
      for (int i = 0; i < frames; ++i) {
        SendSome(fd, header.data(), kHeaderSize);
        SendSome(fd, pattern.Request(offset), size);
      }
      break;
    }
    case 4: {  // one frame, its answer read and checked, then the reset
      FrameStream s(target_.pattern, fd);
      s.Enqueue(size, offset);
      const Clock::time_point deadline = Clock::now() + std::chrono::seconds(10);
      FrameStream::Result r = FrameStream::Result::kOk;
      while (s.answered() == 0 && r == FrameStream::Result::kOk && Clock::now() < deadline) r = Pump(s, 100);
      if (r == FrameStream::Result::kCorrupt) {
        c.rst_corrupt.fetch_add(1);
        if (logged_++ < kMaxLogged) SOAK_LOG("rst: CORRUPT answer: %s\n", s.error().c_str());
      } else if (s.answered() == 0) {
        c.rst_unanswered.fetch_add(1);
        if (logged_++ < kMaxLogged) SOAK_LOG("rst: no answer before the reset (errno %d)\n", s.last_errno());
      }
      ArmReset(fd);  // the FrameStream's close is the reset
      return;
    }
    case 5: {  // large pipelined frames into a gateway that cannot write them back
      for (int i = 0; i < 16; ++i) {
        const uint32_t big = 65536 + static_cast<uint32_t>(rng_() % (kMaxPayload - 65536 + 1));
        const std::string big_header = Header(big);
        if (!SendSome(fd, big_header.data(), kHeaderSize) || !SendSome(fd, pattern.Request(offset), big)) break;
      }
      break;
    }
    default: {  // a good frame, then a bad header
      SendSome(fd, header.data(), kHeaderSize);
      SendSome(fd, pattern.Request(offset), size);
      SendSome(fd, rng_() % 2 ? "00000" : "12a45", kHeaderSize);
      break;
    }
  }
  ResetClose(fd);
}

void Slowloris::Run() {
  std::vector<Trickler> tricklers(static_cast<size_t>(options_.conns));
  Clock::time_point tick = Clock::now();
  while (PaceUntil(tick)) {
    const Clock::time_point now = Clock::now();
    for (Trickler& t : tricklers) {
      if (t.fd < 0) Open(t, now);
      if (t.fd >= 0 && !Step(t, now)) Open(t, now);
    }
    tick = now + std::chrono::milliseconds(100);
  }
  for (Trickler& t : tricklers) Finish(t);
}

void Slowloris::Open(Trickler& t, Clock::time_point now) {
  Finish(t);
  t.fd = ConnectTo(target_.data, kConnectTimeoutMs);
  if (t.fd < 0) return;  // retried on the next tick
  counters().slow_opened.fetch_add(1);
  const uint32_t size = 20 + static_cast<uint32_t>(rng_() % 181);  // 25..205 s at one byte per second
  const uint32_t offset = SoakPattern::RandomOffset(rng_);
  const std::string header = Header(size);
  t.request = header + std::string(target_.pattern->Request(offset), size);
  t.response = header + std::string(target_.pattern->Response(offset, size), size);
  t.sent = t.received = 0;
  t.overdue = false;
  t.first_byte = t.next_byte = now;
}

void Slowloris::Finish(Trickler& t) {
  if (t.fd >= 0) close(t.fd);
  t.fd = -1;
}

bool Slowloris::Step(Trickler& t, Clock::time_point now) {
  SoakCounters& c = counters();
  bool closed = false;
  char buffer[512];
  for (;;) {
    const ssize_t n = recv(t.fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      const size_t take = static_cast<size_t>(n);
      if (t.sent < t.request.size() || t.received + take > t.response.size() ||
          std::memcmp(buffer, t.response.data() + t.received, take) != 0) {
        c.slow_corrupt.fetch_add(1);
        if (logged_++ < kMaxLogged) SOAK_LOG("slowloris: unexpected or wrong answer bytes\n");
        Finish(t);
        return false;
      }
      t.received += take;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    break;
  }
  if (t.received == t.response.size()) {
    c.slow_completed.fetch_add(1);
    c.frames_sent.fetch_add(1);
    c.frames_answered.fetch_add(1);
    Finish(t);
    return false;
  }
  if (!closed && t.sent < t.request.size() && now >= t.next_byte) {
    const ssize_t n = send(t.fd, t.request.data() + t.sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n == 1) {
      if (t.sent == 0) t.first_byte = now;
      ++t.sent;
      t.next_byte = now + std::chrono::milliseconds(options_.byte_interval_ms);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      closed = true;
    }
  }
  if (closed) {
    if (t.sent == t.request.size()) {
      // A complete frame must be answered before the gateway closes.
      c.slow_corrupt.fetch_add(1);
      if (logged_++ < kMaxLogged) SOAK_LOG("slowloris: closed after a complete frame without its answer\n");
    } else {
      c.slow_closed_by_gateway.fetch_add(1);
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - t.first_byte).count();
      AtomicMin(c.slow_close_min_ms, static_cast<uint64_t>(ms));
      AtomicMax(c.slow_close_max_ms, static_cast<uint64_t>(ms));
    }
    Finish(t);
    return false;
  }
  if (options_.frame_timeout_ms > 0 && !t.overdue && t.sent > 0 && t.sent < t.request.size() &&
      now - t.first_byte > std::chrono::milliseconds(options_.frame_timeout_ms + options_.grace_ms)) {
    t.overdue = true;
    c.slow_overdue.fetch_add(1);
    if (logged_++ < kMaxLogged) {
      SOAK_LOG("slowloris: frame begun %d ms ago still open (frame timeout %d ms)\n",
               options_.frame_timeout_ms + options_.grace_ms, options_.frame_timeout_ms);
    }
    Finish(t);
    return false;
  }
  return true;
}

}  // namespace soak
