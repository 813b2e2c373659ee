// Tests of the soak driver's own checks: FrameStream accepts exactly the
// right answers (split anywhere) and reports a wrong byte, a wrong header, an
// answer before its request was written, bytes nobody asked for, and an EOF
// inside a frame; payload sizes stay in 1..99999; CheckFlat's verdicts.
#include "bench/soak/frame_stream.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "bench/soak/sampler.h"
#include "gtest/gtest.h"

namespace soak {
namespace {

using Result = FrameStream::Result;

class FrameStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ASSERT_EQ(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    stream_ = std::make_unique<FrameStream>(&pattern_, fds[0]);
    peer_ = fds[1];
  }
  void TearDown() override {
    stream_.reset();
    if (peer_ >= 0) close(peer_);
  }

  // What the peer received so far (blocking for exactly `len` bytes).
  std::string PeerRead(size_t len) {
    std::string got(len, '\0');
    size_t have = 0;
    while (have < len) {
      const ssize_t n = read(peer_, got.data() + have, len - have);
      if (n <= 0) break;
      have += static_cast<size_t>(n);
    }
    got.resize(have);
    return got;
  }
  void PeerWrite(const std::string& bytes) {
    ASSERT_EQ(write(peer_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // The correct answer to the request of `size` bytes at `offset`.
  std::string Answer(uint32_t size, uint32_t offset) {
    char header[8];
    std::snprintf(header, sizeof header, "%05u", size);
    return std::string(header, 5) + std::string(pattern_.Response(offset, size), size);
  }
  // Queues and writes requests; checks that the peer got them as framed.
  void SendRequests(const std::vector<std::pair<uint32_t, uint32_t>>& requests) {
    std::string expected;
    for (const auto& [size, offset] : requests) {
      stream_->Enqueue(size, offset);
      char header[8];
      std::snprintf(header, sizeof header, "%05u", size);
      expected += std::string(header, 5) + std::string(pattern_.Request(offset), size);
    }
    uint64_t written = 0;
    ASSERT_EQ(stream_->Send(&written), Result::kOk);
    ASSERT_EQ(written, requests.size());
    ASSERT_EQ(PeerRead(expected.size()), expected);
  }

  SoakPattern pattern_{7};
  std::unique_ptr<FrameStream> stream_;
  int peer_ = -1;
};

TEST_F(FrameStreamTest, AcceptsCorrectAnswersSplitAnywhere) {
  SendRequests({{1, 0}, {300, 17}, {5, 9999}});
  const std::string answers = Answer(1, 0) + Answer(300, 17) + Answer(5, 9999);
  uint64_t answered = 0;
  for (size_t at = 0; at < answers.size(); at += 7) {
    PeerWrite(answers.substr(at, 7));
    ASSERT_EQ(stream_->Receive(&answered), Result::kOk);
  }
  EXPECT_EQ(answered, 3u);
  EXPECT_EQ(stream_->outstanding(), 0u);
  EXPECT_EQ(stream_->outstanding_bytes(), 0u);
  EXPECT_TRUE(stream_->at_frame_boundary());
  close(peer_);
  peer_ = -1;
  EXPECT_EQ(stream_->Receive(), Result::kEof);
}

TEST_F(FrameStreamTest, ReportsAWrongPayloadByte) {
  SendRequests({{100, 5}});
  std::string answer = Answer(100, 5);
  answer[60] = static_cast<char>(answer[60] ^ 1);
  PeerWrite(answer);
  EXPECT_EQ(stream_->Receive(), Result::kCorrupt);
  EXPECT_NE(stream_->error().find("byte 55"), std::string::npos) << stream_->error();
}

TEST_F(FrameStreamTest, ReportsAWrongHeader) {
  SendRequests({{100, 5}});
  std::string answer = Answer(100, 5);
  answer[4] = '1';
  PeerWrite(answer);
  EXPECT_EQ(stream_->Receive(), Result::kCorrupt);
}

TEST_F(FrameStreamTest, ReportsAnAnswerBeforeItsRequestWasWritten) {
  stream_->Enqueue(10, 0);  // queued, not written
  PeerWrite(Answer(10, 0));
  EXPECT_EQ(stream_->Receive(), Result::kCorrupt);
}

TEST_F(FrameStreamTest, ReportsBytesNobodyAskedFor) {
  SendRequests({{3, 1}});
  PeerWrite(Answer(3, 1) + "0");
  uint64_t answered = 0;
  EXPECT_EQ(stream_->Receive(&answered), Result::kCorrupt);
  EXPECT_EQ(answered, 1u);
}

TEST_F(FrameStreamTest, AnEofInsideAFrameIsNotAtAFrameBoundary) {
  SendRequests({{50, 3}, {50, 4}});
  PeerWrite(Answer(50, 3) + Answer(50, 4).substr(0, 20));
  close(peer_);
  peer_ = -1;
  uint64_t answered = 0;
  EXPECT_EQ(stream_->Receive(&answered), Result::kEof);
  EXPECT_EQ(answered, 1u);
  EXPECT_FALSE(stream_->at_frame_boundary());
  EXPECT_EQ(stream_->in_flight(), 1u);
}

TEST(PickPayloadSizeTest, StaysInRangeAndCoversBothEnds) {
  std::mt19937_64 rng(3);
  uint32_t smallest = kMaxPayload, largest = 0;
  int small = 0;
  for (int i = 0; i < 100000; ++i) {
    const uint32_t size = PickPayloadSize(rng);
    ASSERT_GE(size, 1u);
    ASSERT_LE(size, kMaxPayload);
    smallest = std::min(smallest, size);
    largest = std::max(largest, size);
    if (size <= 64) ++small;
  }
  EXPECT_EQ(smallest, 1u);
  EXPECT_EQ(largest, kMaxPayload);
  EXPECT_GT(small, 35000);  // heavy on small payloads
}

TEST(CheckFlatTest, Verdicts) {
  EXPECT_FALSE(CheckFlat({1, 2, 3}, 0.2, 0).judged);
  const std::vector<double> flat = {5, 9, 10, 10, 11, 10, 10, 11, 10, 10, 11, 10};
  EXPECT_TRUE(CheckFlat(flat, 0.2, 0).flat);
  const std::vector<double> rising = {10, 10, 10, 10, 11, 12, 13, 14, 15, 16, 17, 18};
  const FlatCheck check = CheckFlat(rising, 0.2, 0);
  EXPECT_TRUE(check.judged);
  EXPECT_FALSE(check.flat);
  EXPECT_DOUBLE_EQ(check.second_quarter, 11);  // values 3..5: 10, 11, 12
  EXPECT_DOUBLE_EQ(check.last_quarter, 17);    // values 9..11: 16, 17, 18
  EXPECT_TRUE(CheckFlat(rising, 0, 6).flat);   // 17 <= 11 + 6
}

}  // namespace
}  // namespace soak
