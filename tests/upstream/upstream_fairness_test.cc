// Upstream mode when every backend is full: clients that waited for room get
// it in the order they came, ahead of clients that come later (README,
// "Limits"). A fake backend in the test (a raw socket the test answers by
// hand) and limits of one request in flight and one pending make the order
// the gateway writes requests in the thing to check.
#include <memory>
#include <string>

#include "absl/cleanup/cleanup.h"
#include "gtest/gtest.h"
#include "tests/support/loopback.h"
#include "tests/support/reactor_stall.h"
#include "tests/upstream/upstream_fixture.h"

namespace gateway::testing {
namespace {

// The next frame's payload, or the error in its place.
std::string NextFrame(TestClient& client) {
  absl::StatusOr<std::string> frame = client.ReadFrame();
  return frame.ok() ? *frame : frame.status().ToString();
}

class UpstreamFairnessTest : public UpstreamTest {
 protected:
  // The gateway under test on one reactor in front of `backend`, with room
  // for one request in flight and one waiting.
  void StartTinyFront(const LoopbackSocket& backend) {
    GatewayOptions options;
    options.reactors = 1;
    GetParam().ApplyTo(&options.reactor);
    options.upstream.backends.push_back({absl::StrCat("127.0.0.1:", backend.port())});
    options.upstream.timeout = absl::Seconds(60);
    options.upstream.probe_interval = absl::ZeroDuration();
    options.upstream.max_inflight = 1;
    options.upstream.max_pending = 1;
    StartGateway(options);
  }
};

// X's request is in flight and A's waits to be written: every backend is
// full. W sends and waits for room. Then, in one wakeup of the reactor, the
// backend answers X (room for one) and N, a newcomer, sends: W's request goes
// to the backend before N's, though N's bytes were read in the same turn the
// room appeared. Without first come, first served, a client answered in a
// turn reads again at once and those that waited starve (under load: a
// p99 4x the median at 1,000 clients x 16 in flight).
TEST_P(UpstreamFairnessTest, ClientThatWaitedForRoomGoesBeforeNewcomer) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket listener, ListenOnLoopback());
  StartTinyFront(listener);
  ASSERT_OK_AND_ASSIGN(TestClient backend, TestClient::Accept(listener.fd()));
  TestClient x = Connect();
  TestClient a = Connect();
  TestClient w = Connect();
  TestClient n = Connect();
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo a_info, FindConnection(*gw_, a));

  ASSERT_OK(x.WriteAll(Frame("x1")));
  EXPECT_EQ(NextFrame(backend), "x1");
  ASSERT_OK(a.WriteAll(Frame("a1")));  // pending: X's is in flight
  ASSERT_TRUE(AwaitConnection(a_info.fd, [](const ConnectionInfo& i) { return i.upstream_inflight == 1; }));
  ASSERT_OK(w.WriteAll(Frame("w1")));  // full: W waits for room
  ASSERT_TRUE(AwaitAcked(w));  // its readiness comes before the backend's answer

  // Hold the reactor so that the backend's answer and N's request arrive in
  // one wakeup, the answer first.
  std::shared_ptr<Stall> stall = Stall::Start(*gw_, 0);
  absl::Cleanup let_go = [stall] { stall->Release(); };  // also when an assertion returns early
  ASSERT_OK(backend.WriteAll(Frame("1x")));
  ASSERT_TRUE(AwaitAcked(backend));
  ASSERT_OK(n.WriteAll(Frame("n1")));
  stall->Release();

  // The backend answers each request as it comes, and records the order.
  std::string order;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(const std::string request, backend.ReadFrame());
    order += request + " ";
    ASSERT_OK(backend.WriteAll(Frame(Reversed(request))));
  }
  EXPECT_EQ(order, "a1 w1 n1 ");
  EXPECT_EQ(NextFrame(x), "1x");
  EXPECT_EQ(NextFrame(a), "1a");
  EXPECT_EQ(NextFrame(w), "1w");
  EXPECT_EQ(NextFrame(n), "1n");
}

INSTANTIATE_ON_REACTOR_BACKENDS(UpstreamFairnessTest);

}  // namespace
}  // namespace gateway::testing
