// PayloadPattern: the deterministic request payloads of one run and the
// responses they must produce. Request `seq` on connection `conn` carries the
// `size` bytes of a fixed pseudo-random pattern starting at an offset derived
// from (conn, seq); its correct response is the same 5-byte header followed
// by that slice reversed, which is a slice of the reversed pattern. So a
// request is sent straight from the pattern (no copy) and a response is
// checked with memcmp against the reversed pattern, piece by piece as it
// arrives, without storing anything per request.
//
// The pattern uses 64 printable characters only, never CR or LF: the
// reference server nbnet.py strips a CR LF found at the start of a read (its
// original telnet behaviour), which would corrupt binary payloads by chance.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace bench {

// Immutable after construction; safe to share between threads.
class PayloadPattern {
 public:
  static constexpr int kHeaderSize = 5;
  static constexpr int kMaxSize = 99999;
  static constexpr uint32_t kOffsets = 4096;  // distinct slices

  // `size` in 1..kMaxSize.
  explicit PayloadPattern(int size);

  int size() const { return size_; }
  int frame_size() const { return kHeaderSize + size_; }
  // The 5-digit header shared by every request and response of the run.
  const char* header() const { return header_; }

  // Where request (conn, seq)'s payload starts in the pattern.
  static uint32_t Offset(uint32_t conn, uint64_t seq) {
    uint64_t x = (static_cast<uint64_t>(conn) << 32) ^ seq;
    x *= 0x9E3779B97F4A7C15ull;
    return static_cast<uint32_t>(x >> 52);  // 12 bits = kOffsets
  }
  const char* RequestPayload(uint32_t offset) const { return pattern_.data() + offset; }
  // The correct response payload for the request whose payload started at
  // `offset`.
  const char* ResponsePayload(uint32_t offset) const {
    return reversed_.data() + (reversed_.size() - offset - static_cast<size_t>(size_));
  }

 private:
  int size_;
  char header_[kHeaderSize + 1];
  std::string pattern_;   // kOffsets + size bytes
  std::string reversed_;  // pattern_ reversed
};

}  // namespace bench
