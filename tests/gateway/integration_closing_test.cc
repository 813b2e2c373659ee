// How connections end: a bad header (after good frames, or in a later read),
// a half-close (with responses pending or a frame incomplete), a reset while
// output is queued. Every response owed is delivered first; bystanders are
// unaffected.
#include <algorithm>
#include <random>
#include <string>

#include "gateway/frame_codec.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/gateway/integration_fixture.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class ClosingTest : public GatewayIntegrationTest {};

TEST_P(ClosingTest, BadHeaderAfterGoodFrames) {
  StartGateway();
  TestClient client = Connect();
  TestClient bystander = Connect();
  const std::string good = Frame("one") + "\r\n" + Frame("two") + Frame(std::string(3000, 'x'));
  const std::string expected = ReversedFrame("one") + ReversedFrame("two") + ReversedFrame(std::string(3000, 'x'));
  ASSERT_OK(client.WriteAll(good + "12a45" + Frame("never")));
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof());
  EXPECT_TRUE(got == expected) << got.size() << " bytes";
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kProtocolError) == 1; }));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::protocol_errors), 1u);
  // Nothing else is affected.
  ASSERT_OK_AND_ASSIGN(const std::string reply, bystander.RoundTrip("still here"));
  EXPECT_EQ(reply, "ereh llits");
}

TEST_P(ClosingTest, BadHeaderArrivingInALaterRead) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  ASSERT_OK(client.WriteAll(Frame("abc") + "000"));
  ASSERT_OK_AND_ASSIGN(const std::string reply, client.ReadFrame());
  EXPECT_EQ(reply, "cba");
  ASSERT_TRUE(AwaitBytesIn(info.fd, 11));
  ASSERT_OK(client.WriteAll("00"));  // "00000"
  EXPECT_OK(client.ExpectEof());
}

TEST_P(ClosingTest, HalfCloseDeliversEveryResponseThenEof) {
  StartGateway();
  TestClient client = Connect();
  std::mt19937_64 rng(7);
  std::string requests, expected;
  for (int i = 0; i < 50; ++i) {
    const std::string payload = RandomBytes(rng, 1 + rng() % 20000);
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_OK(client.WriteAll(requests));
  ASSERT_OK(client.ShutdownWrite());
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof(Deadline(kBigStep)));
  EXPECT_TRUE(got == expected) << got.size() << " of " << expected.size() << " bytes";
  client.Close();
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kPeerClosed) == 1; }));
}

TEST_P(ClosingTest, HalfCloseAfterAnIncompleteFrame) {
  StartGateway();
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("done") + "00010half"));
  ASSERT_OK(client.ShutdownWrite());
  ASSERT_OK_AND_ASSIGN(const std::string got, client.ReadUntilEof());
  EXPECT_EQ(got, ReversedFrame("done"));
}

TEST_P(ClosingTest, ResetMidResponse) {
  if (GetParam().model == IoModel::kBlocking) {
    // A thread blocked in send() does not read, so this client's writes
    // would stall with it: BlockingServerTest.ResetWhileBlockedInSend.
    GTEST_SKIP() << "the blocking model stops reading while a send blocks";
  }
  StartGateway();
  TestClient bystander = Connect();
  ASSERT_OK(bystander.RoundTrip("before"));
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
  // Large frames, never read, until the server has output it cannot send.
  std::mt19937_64 rng(8);
  const std::string frame = Frame(RandomBytes(rng, kMaxPayload));
  bool stuck = false;
  for (int i = 0; i < 400 && !stuck; ++i) {
    ASSERT_OK(client.WriteAll(frame, Deadline(kBigStep))) << "frame " << i;
    ASSERT_OK_AND_ASSIGN(const ConnectionInfo now, gw_->GetConnection(info.fd));
    stuck = now.need_write > 0;
  }
  ASSERT_TRUE(stuck) << "the server never had to queue output";
  ASSERT_OK(client.SetLingerZero());
  client.Close();  // RST
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kReset) == 1; }));
  EXPECT_TRUE(WaitUntil([&] { return gw_->active_connections() == 1; }));
  // The gateway and the other client are fine.
  ASSERT_OK_AND_ASSIGN(std::string reply, bystander.RoundTrip("after"));
  EXPECT_EQ(reply, "retfa");
  TestClient fresh = Connect();
  ASSERT_OK_AND_ASSIGN(reply, fresh.RoundTrip("fresh"));
  EXPECT_EQ(reply, "hserf");
  EXPECT_EQ(ClosedCount(*gw_, CloseReason::kError), 0u);
}

INSTANTIATE_ON_ALL_BACKENDS(ClosingTest);

}  // namespace
}  // namespace gateway::testing
