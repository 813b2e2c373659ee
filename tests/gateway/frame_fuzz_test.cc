// A seeded randomized test of the frame decoder that runs in CI: random
// streams of valid frames with random CR/LF between them, cut at random
// points, sometimes with a corrupted header, decoded the way a connection
// does (StreamDecoder over ScanFrame) and compared with the reference model.
// Set GATEWAY_FUZZ_ITERATIONS to run longer than the CI default.
#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gtest/gtest.h"
#include "tests/support/decoder_harness.h"

namespace gateway::testing {
namespace {

int Iterations(int fallback) {
  const char* env = std::getenv("GATEWAY_FUZZ_ITERATIONS");
  int n = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &n) && n > 0) return n;
  return fallback;
}

// How a stream was built, so a failure can say what it contained.
struct Stream {
  std::string bytes;
  std::vector<std::string> payloads;      // the frames written, in order
  size_t corrupt_at = std::string::npos;  // offset of the corrupted header byte
};

char RandomNonDigitHeaderByte(std::mt19937_64& rng) {
  for (;;) {
    const char c = static_cast<char>(rng() & 0xff);
    if (c < '0' || c > '9') return c;
  }
}

Stream RandomStream(std::mt19937_64& rng) {
  Stream s;
  const int frames = static_cast<int>(rng() % 30);
  const bool corrupt = rng() % 4 == 0;
  const int corrupt_frame = frames > 0 ? static_cast<int>(rng() % frames) : 0;
  for (int f = 0; f < frames; ++f) {
    if (rng() % 3 == 0) {
      const int crlf = static_cast<int>(rng() % 4);
      for (int i = 0; i < crlf; ++i) s.bytes.push_back(rng() % 2 ? '\r' : '\n');
    }
    size_t size;
    switch (rng() % 64) {
      case 0: size = kMaxPayload - rng() % 3; break;
      case 1:
      case 2:
      case 3:
      case 4: size = 1 + rng() % 5000; break;
      default: size = 1 + rng() % 40; break;
    }
    std::string payload(size, '\0');
    // Payloads full of digits, CR and LF make misparsing visible.
    for (char& c : payload) c = "0123456789\r\nab\0\xff"[rng() % 16];
    const size_t header_at = s.bytes.size();
    s.bytes += EncodeFrame(payload);
    if (corrupt && f == corrupt_frame) {
      if (rng() % 3 == 0) {
        std::fill(s.bytes.begin() + static_cast<ptrdiff_t>(header_at),
                  s.bytes.begin() + static_cast<ptrdiff_t>(header_at + kHeaderSize), '0');
        s.corrupt_at = header_at;
      } else {
        s.corrupt_at = header_at + rng() % kHeaderSize;
        char bad = RandomNonDigitHeaderByte(rng);
        // CR/LF at the header's first byte would just be skipped.
        if (s.corrupt_at == header_at && (bad == '\r' || bad == '\n')) bad = 'x';
        s.bytes[s.corrupt_at] = bad;
      }
    }
    s.payloads.push_back(std::move(payload));
  }
  // Sometimes end in the middle of a frame.
  if (rng() % 3 == 0) {
    const std::string tail = EncodeFrame(std::string(1 + rng() % 100, 'T'));
    s.bytes += tail.substr(0, rng() % tail.size());
  }
  return s;
}

std::vector<size_t> RandomCuts(std::mt19937_64& rng, size_t size) {
  std::vector<size_t> cuts;
  if (size == 0) return cuts;
  switch (rng() % 4) {
    case 0:  // a few cuts anywhere
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) cuts.push_back(rng() % (size + 1));
      break;
    case 1:  // many small pieces
      for (size_t pos = 0; pos < size; pos += 1 + rng() % 16) cuts.push_back(pos);
      break;
    case 2:  // pieces the size of socket reads
      for (size_t pos = 0; pos < size; pos += 1 + rng() % 65536) cuts.push_back(pos);
      break;
    default:  // whole
      break;
  }
  std::sort(cuts.begin(), cuts.end());
  return cuts;
}

TEST(FrameFuzzTest, RandomStreamsRandomCutsMatchTheReference) {
  const int iterations = Iterations(3000);
  for (int i = 0; i < iterations; ++i) {
    const uint64_t seed = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(i + 1);
    std::mt19937_64 rng(seed);
    const Stream stream = RandomStream(rng);
    const std::vector<size_t> cuts = RandomCuts(rng, stream.bytes.size());
    const DecodeResult expected = ReferenceDecode(stream.bytes);

    StreamDecoder decoder;
    size_t pos = 0;
    for (size_t cut : cuts) {
      decoder.Feed(absl::string_view(stream.bytes).substr(pos, cut - pos));
      pos = cut;
    }
    decoder.Feed(absl::string_view(stream.bytes).substr(pos));

    const DecodeResult& got = decoder.result();
    ASSERT_EQ(decoder.contract_violations(), 0) << "seed " << seed;
    ASSERT_EQ(got.error, expected.error) << "seed " << seed;
    ASSERT_EQ(got.payloads.size(), expected.payloads.size()) << "seed " << seed;
    ASSERT_TRUE(got == expected) << "seed " << seed;
    // The reference agrees with how the stream was built: every frame before
    // the corrupted one, exactly.
    if (stream.corrupt_at == std::string::npos) {
      ASSERT_FALSE(expected.error) << "seed " << seed;
      ASSERT_EQ(expected.payloads, stream.payloads) << "seed " << seed;
    } else {
      ASSERT_TRUE(expected.error) << "seed " << seed;
      ASSERT_LT(expected.payloads.size(), stream.payloads.size()) << "seed " << seed;
      ASSERT_TRUE(std::equal(expected.payloads.begin(), expected.payloads.end(), stream.payloads.begin()))
          << "seed " << seed;
    }
  }
}

// Completely random bytes, cut anywhere: never a crash, never a contract
// violation, always the reference's answer.
TEST(FrameFuzzTest, ArbitraryBytes) {
  const int iterations = Iterations(3000);
  for (int i = 0; i < iterations; ++i) {
    const uint64_t seed = 1000003ULL * static_cast<uint64_t>(i + 1);
    std::mt19937_64 rng(seed);
    std::string bytes(rng() % 64, '\0');
    // Mostly digits and CR/LF, so valid-looking headers are common.
    static constexpr char kAlphabet[] = "000001123456789\r\n\n\xff-x";
    for (char& c : bytes) c = kAlphabet[rng() % (sizeof kAlphabet - 1)];
    const std::vector<size_t> cuts = RandomCuts(rng, bytes.size());
    StreamDecoder decoder;
    size_t pos = 0;
    for (size_t cut : cuts) {
      decoder.Feed(absl::string_view(bytes).substr(pos, cut - pos));
      pos = cut;
    }
    decoder.Feed(absl::string_view(bytes).substr(pos));
    ASSERT_EQ(decoder.contract_violations(), 0) << "seed " << seed;
    ASSERT_TRUE(decoder.result() == ReferenceDecode(bytes)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace gateway::testing
