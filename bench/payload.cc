#include "bench/payload.h"

#include <algorithm>
#include <cstdio>

namespace bench {

PayloadPattern::PayloadPattern(int size) : size_(std::clamp(size, 1, kMaxSize)) {
  std::snprintf(header_, sizeof header_, "%05d", size_);
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_0123456789";
  static_assert(sizeof kAlphabet - 1 == 64);
  pattern_.resize(kOffsets + static_cast<size_t>(size_));
  uint64_t x = 0x243F6A8885A308D3ull;  // xorshift64, fixed seed: the same bytes every run
  for (char& c : pattern_) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = kAlphabet[x >> 58];
  }
  reversed_.assign(pattern_.rbegin(), pattern_.rend());
}

}  // namespace bench
