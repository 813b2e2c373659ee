// PayloadPattern: headers, offsets, and that ResponsePayload is exactly the
// reversed request payload.
#include "bench/payload.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace bench {
namespace {

TEST(PayloadPatternTest, HeaderIsFiveZeroPaddedDigits) {
  EXPECT_STREQ(PayloadPattern(3).header(), "00003");
  EXPECT_STREQ(PayloadPattern(65536).header(), "65536");
  EXPECT_STREQ(PayloadPattern(99999).header(), "99999");
  EXPECT_EQ(PayloadPattern(64).frame_size(), 69);
}

TEST(PayloadPatternTest, ResponseIsTheReversedRequest) {
  for (int size : {1, 2, 16, 64, 1024, 65536, 99999}) {
    const PayloadPattern p(size);
    for (uint32_t conn : {0u, 1u, 9999u}) {
      for (uint64_t seq : {0ull, 1ull, 2ull, 123456789ull}) {
        const uint32_t off = PayloadPattern::Offset(conn, seq);
        ASSERT_LT(off, PayloadPattern::kOffsets);
        std::string request(p.RequestPayload(off), static_cast<size_t>(size));
        std::reverse(request.begin(), request.end());
        ASSERT_EQ(request, std::string(p.ResponsePayload(off), static_cast<size_t>(size)))
            << "size " << size << " conn " << conn << " seq " << seq;
      }
    }
  }
}

TEST(PayloadPatternTest, NoCarriageReturnOrLineFeed) {
  const PayloadPattern p(99999);
  const std::string all(p.RequestPayload(0), PayloadPattern::kOffsets + 99999);
  EXPECT_EQ(all.find_first_of("\r\n"), std::string::npos);
}

TEST(PayloadPatternTest, OffsetsVaryAcrossRequestsAndConnections) {
  // Consecutive requests must differ so a server answering with a stale or
  // neighbouring response is caught.
  int same = 0;
  for (uint64_t seq = 0; seq < 1000; ++seq) {
    if (PayloadPattern::Offset(7, seq) == PayloadPattern::Offset(7, seq + 1)) ++same;
    if (PayloadPattern::Offset(7, seq) == PayloadPattern::Offset(8, seq)) ++same;
  }
  EXPECT_LT(same, 5);
  const PayloadPattern p(16);
  EXPECT_NE(std::string(p.RequestPayload(PayloadPattern::Offset(0, 1)), 16),
            std::string(p.RequestPayload(PayloadPattern::Offset(0, 2)), 16));
}

}  // namespace
}  // namespace bench
