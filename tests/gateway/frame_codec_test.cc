// Unit tests for gateway/frame_codec: ScanFrame on whole streams, on every
// split point and byte by byte through a decoder that accumulates input the
// way a connection does; CR/LF skipping; every kind of malformed header; and
// the encoder.
#include "gateway/frame_codec.h"

#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/support/decoder_harness.h"

namespace gateway::testing {
namespace {

using Status = FrameScan::Status;

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

DecodeResult DecodeInPieces(absl::string_view stream, const std::vector<size_t>& cuts, int* violations) {
  StreamDecoder decoder;
  size_t pos = 0;
  for (size_t cut : cuts) {
    decoder.Feed(stream.substr(pos, cut - pos));
    pos = cut;
  }
  decoder.Feed(stream.substr(pos));
  *violations += decoder.contract_violations();
  return decoder.result();
}

// --- ScanFrame on single inputs: one table -----------------------------------

// One input and what ScanFrame must say about it; skip and frame_size are
// checked where given.
struct ScanCase {
  std::string name;  // the test's name suffix
  std::string input;
  Status status;
  std::optional<size_t> skip;
  std::optional<size_t> frame_size;
};

void PrintTo(const ScanCase& c, std::ostream* os) {
  *os << c.name << " \"" << absl::CEscape(c.input.substr(0, 40)) << "\"";
}

std::vector<ScanCase> ScanCases() {
  const std::string largest = "99999" + std::string(kMaxPayload, 'z');
  std::vector<ScanCase> cases = {
      {"EmptyInputNeedsMore", "", Status::kNeedMore, 0, 0},
      {"CompleteFrame", "00003abc", Status::kFrame, 0, 8},
      {"CompleteFrameFollowedByMoreBytes", "00003abc00002xy", Status::kFrame, 0, 8},
      // A partial header: the size is not known yet.
      {"PartialHeader1", "0", Status::kNeedMore, 0, 0},
      {"PartialHeader2", "00", Status::kNeedMore, 0, 0},
      {"PartialHeader3", "000", Status::kNeedMore, 0, 0},
      {"PartialHeader4", "0000", Status::kNeedMore, 0, 0},
      // A partial payload: the size is known.
      {"PartialPayloadHeaderOnly", "00010", Status::kNeedMore, 0, 15},
      {"PartialPayload3Of10", "00010abc", Status::kNeedMore, 0, 15},
      {"PartialPayload9Of10", "00010abcdefghi", Status::kNeedMore, 0, 15},
      {"PayloadMayHoldAnyByte", EncodeFrame(Bytes({0, '\r', '\n', 0xff, '0', 'x'})), Status::kFrame, 0, 11},
      {"SmallestPayload", "00001x", Status::kFrame, 0, 6},
      {"LargestPayload", largest, Status::kFrame, 0, kMaxFrameSize},
      {"LargestPayloadShortByOne", largest.substr(0, largest.size() - 1), Status::kNeedMore, 0, kMaxFrameSize},
      // CR/LF before a header is skipped; inside a payload it is data.
      {"OnlyCrLfNeedsMoreAndSkipsAll", "\r\n\r\n", Status::kNeedMore, 4, 0},
      {"SkipsCrLfBeforePartialHeader", "\n\n000", Status::kNeedMore, 2, std::nullopt},
      {"CrLfInsidePayloadIsData", "00004\r\n\r\n", Status::kFrame, 0, 9},
      {"ErrorReportsWhereTheHeaderStarts", "\r\n\r\nabcde", Status::kError, 4, std::nullopt},
      // A zero length is an error, but only once the header is complete.
      {"ZeroLength", "00000", Status::kError, std::nullopt, std::nullopt},
      {"ZeroLengthWithBytesAfter", "00000abc", Status::kError, std::nullopt, std::nullopt},
      {"ZeroLengthAfterCrLf", "\r\n00000", Status::kError, std::nullopt, std::nullopt},
      {"ZeroLengthIncompleteNeedsMore", "0000", Status::kNeedMore, std::nullopt, std::nullopt},
  };
  int n = 0;
  for (absl::string_view prefix : {"\r", "\n", "\r\n", "\n\n\n", "\r\r\n\n\r"}) {
    cases.push_back({absl::StrCat("SkipsCrLfBeforeHeader", ++n), absl::StrCat(prefix, "00003abc"), Status::kFrame,
                     prefix.size(), 8});
  }
  n = 0;
  for (absl::string_view input : {"0\r003abc", "00\n03abc", "000\r\nabc", "0000\nabc", "\n0\r003abc"}) {
    cases.push_back(
        {absl::StrCat("CrLfInsideHeader", ++n), std::string(input), Status::kError, std::nullopt, std::nullopt});
  }
  n = 0;
  for (absl::string_view input : {"-0003abc", "+0003abc", " 0003abc", "0003 abc", "   3abc", "0x003abc", "3    abc"}) {
    cases.push_back(
        {absl::StrCat("SignOrSpaceInHeader", ++n), std::string(input), Status::kError, std::nullopt, std::nullopt});
  }
  return cases;
}

class ScanFrameCaseTest : public ::testing::TestWithParam<ScanCase> {};

TEST_P(ScanFrameCaseTest, Scans) {
  const ScanCase& c = GetParam();
  const FrameScan scan = ScanFrame(c.input);
  EXPECT_EQ(scan.status, c.status);
  if (c.skip.has_value()) {
    EXPECT_EQ(scan.skip, *c.skip);
  }
  if (c.frame_size.has_value()) {
    EXPECT_EQ(scan.frame_size, *c.frame_size);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ScanFrameCaseTest, ::testing::ValuesIn(ScanCases()),
                         [](const ::testing::TestParamInfo<ScanCase>& info) { return info.param.name; });

TEST(StreamDecoderTest, CrLfBetweenFramesAndAfterTheLast) {
  StreamDecoder decoder;
  decoder.Feed("\r\n00003abc\n00002de\r\n\r\n00001f\n");
  EXPECT_EQ(decoder.result().payloads, (std::vector<std::string>{"abc", "de", "f"}));
  EXPECT_FALSE(decoder.result().error);
  EXPECT_EQ(decoder.result().pending, 0u);
  EXPECT_EQ(decoder.contract_violations(), 0);
}

TEST(StreamDecoderTest, TypedIntoNetcat) {
  // What `nc` sends when a user types two frames, each followed by Enter.
  StreamDecoder decoder;
  for (absl::string_view line : {"00005hello\n", "00005world\n"}) decoder.Feed(line);
  EXPECT_EQ(decoder.result().payloads, (std::vector<std::string>{"hello", "world"}));
  EXPECT_EQ(decoder.result().pending, 0u);
}

// --- Malformed headers --------------------------------------------------------

// Bytes that may never appear in a header.
std::vector<std::string> BadHeaderBytes() {
  std::vector<std::string> bad = {"a",        "Z",           "-",           "+",           " ",          "\t",
                                  ".",        "/",           ":",           "x",           "\r",         "\n",
                                  Bytes({0}), Bytes({0x7f}), Bytes({0x80}), Bytes({0xb0}), Bytes({0xff})};
  // High-bit bytes whose low 7 bits are digits must not pass either.
  for (int d = 0; d <= 9; ++d) bad.push_back(Bytes({0x80 | ('0' + d)}));
  return bad;
}

TEST(ScanFrameTest, NonDigitAtEveryHeaderPositionIsAnError) {
  for (const std::string& bad : BadHeaderBytes()) {
    for (size_t position = 0; position < kHeaderSize; ++position) {
      // CR/LF at position 0 is skipped, not an error: covered separately.
      if (position == 0 && (bad == "\r" || bad == "\n")) continue;
      std::string header = "00012";
      header[position] = bad[0];
      const std::string data = header + "payload-here";
      SCOPED_TRACE(absl::StrCat("byte ", static_cast<int>(static_cast<unsigned char>(bad[0])), " at ", position));
      EXPECT_EQ(ScanFrame(data).status, Status::kError);
      // As soon as it arrives: the bytes up to and including it suffice.
      EXPECT_EQ(ScanFrame(absl::string_view(data).substr(0, position + 1)).status, Status::kError);
      // And not before.
      if (position > 0) {
        EXPECT_EQ(ScanFrame(absl::string_view(data).substr(0, position)).status, Status::kNeedMore);
      }
    }
  }
}

TEST(StreamDecoderTest, GoodFramesBeforeBadHeaderAreDelivered) {
  StreamDecoder decoder;
  decoder.Feed("00003abc00002de0x001f");
  EXPECT_EQ(decoder.result().payloads, (std::vector<std::string>{"abc", "de"}));
  EXPECT_TRUE(decoder.result().error);
  decoder.Feed("00001g");  // nothing after an error counts
  EXPECT_EQ(decoder.result().payloads.size(), 2u);
}

// --- Every split point ------------------------------------------------------

// A stream with CR/LF around frames, binary payloads, and the largest frame.
std::string MultiFrameStream() {
  std::string payload_binary;
  for (int i = 0; i < 256; ++i) payload_binary.push_back(static_cast<char>(i));
  return absl::StrCat("\r\n", EncodeFrame("abc"), EncodeFrame("x"), "\n", EncodeFrame(payload_binary), "\r\n\r\n",
                      EncodeFrame("\r\n00005"), EncodeFrame(std::string(1000, '7')), EncodeFrame("end"));
}

TEST(SplitPointTest, TwoPiecesAtEveryOffset) {
  const std::string stream = MultiFrameStream();
  const DecodeResult expected = ReferenceDecode(stream);
  ASSERT_EQ(expected.payloads.size(), 6u);
  ASSERT_FALSE(expected.error);
  int violations = 0;
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(DecodeInPieces(stream, {cut}, &violations), expected) << "cut at " << cut;
  }
  EXPECT_EQ(violations, 0);
}

TEST(SplitPointTest, ThreePiecesAtEveryPairOfOffsetsInTheSmallFrames) {
  // Every pair of cuts within the first ~40 bytes (several whole frames).
  const std::string stream = MultiFrameStream();
  const DecodeResult expected = ReferenceDecode(stream);
  int violations = 0;
  for (size_t a = 0; a <= 40; ++a) {
    for (size_t b = a; b <= 40; ++b) {
      ASSERT_EQ(DecodeInPieces(stream, {a, b}, &violations), expected) << a << "," << b;
    }
  }
  EXPECT_EQ(violations, 0);
}

TEST(SplitPointTest, ByteByByte) {
  const std::string stream = MultiFrameStream();
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  int violations = 0;
  EXPECT_EQ(DecodeInPieces(stream, cuts, &violations), ReferenceDecode(stream));
  EXPECT_EQ(violations, 0);
}

TEST(SplitPointTest, LargestFrameAtEveryOffsetNearItsEdges) {
  const std::string big = EncodeFrame(std::string(kMaxPayload, 'q'));
  const std::string stream = absl::StrCat(big, "\n", big, EncodeFrame("z"));
  const DecodeResult expected = ReferenceDecode(stream);
  ASSERT_EQ(expected.payloads.size(), 3u);
  int violations = 0;
  std::vector<size_t> cuts;
  for (size_t i = 0; i < 12; ++i) {
    cuts.push_back(i);
    cuts.push_back(big.size() - 6 + i);
    cuts.push_back(stream.size() - i);
  }
  for (size_t cut : cuts) ASSERT_EQ(DecodeInPieces(stream, {cut}, &violations), expected) << cut;
  EXPECT_EQ(violations, 0);
}

TEST(SplitPointTest, BadHeaderAfterGoodFramesAtEveryOffset) {
  const std::string stream = absl::StrCat(EncodeFrame("abc"), "\r\n", EncodeFrame("de"), "00-01x", EncodeFrame("f"));
  const DecodeResult expected = ReferenceDecode(stream);
  ASSERT_TRUE(expected.error);
  ASSERT_EQ(expected.payloads, (std::vector<std::string>{"abc", "de"}));
  int violations = 0;
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(DecodeInPieces(stream, {cut}, &violations), expected) << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < stream.size(); ++i) every.push_back(i);
  EXPECT_EQ(DecodeInPieces(stream, every, &violations), expected);
  EXPECT_EQ(violations, 0);
}

TEST(SplitPointTest, ZeroHeaderAtEveryOffset) {
  const std::string stream = absl::StrCat(EncodeFrame("abc"), "00000", EncodeFrame("x"));
  int violations = 0;
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    const DecodeResult got = DecodeInPieces(stream, {cut}, &violations);
    ASSERT_TRUE(got.error) << cut;
    ASSERT_EQ(got.payloads, std::vector<std::string>{"abc"}) << cut;
  }
  EXPECT_EQ(violations, 0);
}

TEST(SplitPointTest, PendingCountsThePartialFrame) {
  StreamDecoder decoder;
  decoder.Feed("00003abc\r\n000");
  EXPECT_EQ(decoder.result().pending, 3u);  // CR/LF consumed, "000" kept
  decoder.Feed("05he");
  EXPECT_EQ(decoder.result().pending, 7u);
  decoder.Feed("llo");
  EXPECT_EQ(decoder.result().pending, 0u);
  EXPECT_EQ(decoder.result().payloads, (std::vector<std::string>{"abc", "hello"}));
}

// --- Header helpers and the encoder ---------------------------------------

TEST(HeaderTest, PayloadLength) {
  EXPECT_EQ(HeaderPayloadLength("00001"), 1u);
  EXPECT_EQ(HeaderPayloadLength("00042"), 42u);
  EXPECT_EQ(HeaderPayloadLength("10000"), 10000u);
  EXPECT_EQ(HeaderPayloadLength("99999"), 99999u);
}

TEST(HeaderTest, WriteHeaderIsZeroPaddedAndRoundTrips) {
  for (size_t n : {1u, 9u, 10u, 99u, 100u, 999u, 1000u, 9999u, 10000u, 12345u, 99999u}) {
    char header[kHeaderSize + 1] = {};
    header[kHeaderSize] = '#';  // must stay untouched
    WriteHeader(n, header);
    EXPECT_EQ(std::string(header, kHeaderSize), absl::StrCat(std::string(5 - absl::StrCat(n).size(), '0'), n));
    EXPECT_EQ(header[kHeaderSize], '#');
    EXPECT_EQ(HeaderPayloadLength(header), n);
  }
}

TEST(HeaderTest, EncodeFrame) {
  EXPECT_EQ(EncodeFrame("abc"), "00003abc");
  EXPECT_EQ(EncodeFrame(std::string(1, '\0')), std::string("00001\0", 6));
  const std::string big(kMaxPayload, 'm');
  const std::string frame = EncodeFrame(big);
  EXPECT_EQ(frame.size(), kMaxFrameSize);
  EXPECT_EQ(frame.substr(0, 5), "99999");
  EXPECT_EQ(frame.substr(5), big);
}

TEST(HeaderTest, EveryLengthRoundTripsThroughScanFrame) {
  std::string frame;
  for (size_t n = 1; n <= kMaxPayload; n += (n < 1000 ? 1 : 97)) {
    frame.assign(kHeaderSize, '0');
    WriteHeader(n, frame.data());
    frame.resize(kHeaderSize + n, 'p');
    const FrameScan scan = ScanFrame(frame);
    ASSERT_EQ(scan.status, Status::kFrame) << n;
    ASSERT_EQ(scan.frame_size, kHeaderSize + n) << n;
  }
}

}  // namespace
}  // namespace gateway::testing
