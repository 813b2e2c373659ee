// Upstream mode in process: a gateway forwarding to backend gateways (and to
// fake backends that stall or misbehave), checked byte for byte and counter
// for counter.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/loopback.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

std::string Address(int port) { return absl::StrCat("127.0.0.1:", port); }

class UpstreamTest : public ::testing::Test {
 protected:
  // A backend gateway in its default (reversing) mode.
  Gateway& StartBackend() {
    GatewayOptions options;
    options.reactors = 1;
    auto backend = StartTestGateway(options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    backends_.push_back(*std::move(backend));
    return *backends_.back();
  }

  // The gateway under test, in front of `addresses`.
  // Probes are off unless `probes`: they are tested on their own.
  void StartProxy(const std::vector<std::string>& addresses, UpstreamOptions upstream = {}, int reactors = 2,
                  bool probes = false) {
    GatewayOptions options;
    options.reactors = reactors;
    upstream.backends.clear();
    for (const std::string& address : addresses) upstream.backends.push_back(BackendSpec{address, 1});
    if (!probes) upstream.probe_interval = absl::ZeroDuration();
    options.upstream = upstream;
    auto proxy = StartTestGateway(options);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = *std::move(proxy);
  }

  TestClient Connect() {
    auto client = TestClient::Connect(proxy_->port());
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  BackendInfo Backend(const std::string& address) {
    auto info = proxy_->GetBackend(address);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *info : BackendInfo{};
  }

  std::vector<std::unique_ptr<Gateway>> backends_;
  std::unique_ptr<Gateway> proxy_;
};

TEST_F(UpstreamTest, RoundTripThroughOneBackend) {
  Gateway& backend = StartBackend();
  StartProxy({Address(backend.port())});
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip("hello upstream"));
  EXPECT_EQ(response, "maertspu olleh");
  const BackendInfo info = Backend(Address(backend.port()));
  EXPECT_EQ(info.requests, 1u);
  EXPECT_EQ(info.responses, 1u);
  EXPECT_EQ(info.state, BackendState::kHealthy);
  EXPECT_EQ(info.weight, 1u);
  EXPECT_EQ(SumStat(backend, &ReactorStats::frames_in), 1u);
}

TEST_F(UpstreamTest, PipelinedFramesComeBackInOrderAcrossTwoBackends) {
  Gateway& a = StartBackend();
  Gateway& b = StartBackend();
  StartProxy({Address(a.port()), Address(b.port())});
  TestClient client = Connect();
  constexpr int kFrames = 500;
  std::string requests;
  std::string expected;
  for (int i = 0; i < kFrames; ++i) {
    const std::string payload = absl::StrCat("request-", i, std::string(static_cast<size_t>(i % 37), 'x'));
    requests += Frame(payload);
    expected += ReversedFrame(payload);
  }
  ASSERT_OK(client.WriteAll(requests));
  ASSERT_OK_AND_ASSIGN(std::string got, client.ReadExactly(expected.size()));
  EXPECT_EQ(got, expected);
  const BackendInfo info_a = Backend(Address(a.port()));
  const BackendInfo info_b = Backend(Address(b.port()));
  EXPECT_EQ(info_a.responses + info_b.responses, static_cast<uint64_t>(kFrames));
  EXPECT_GT(info_a.responses, 0u);
  EXPECT_GT(info_b.responses, 0u);
}

TEST_F(UpstreamTest, FragmentedAndLargeFramesAreForwardedWhole) {
  Gateway& backend = StartBackend();
  StartProxy({Address(backend.port())});
  TestClient client = Connect();
  const std::string small = Frame("byte by byte");
  ASSERT_OK(client.WriteInPieces(small, 1));
  ASSERT_OK_AND_ASSIGN(std::string got, client.ReadExactly(small.size()));
  EXPECT_EQ(got, ReversedFrame("byte by byte"));
  std::mt19937_64 rng(7);
  const std::string big = RandomBytes(rng, 99999);
  ASSERT_OK(client.WriteInPieces(Frame(big), 4096));
  ASSERT_OK_AND_ASSIGN(std::string big_back, client.ReadExactly(big.size() + 5));
  EXPECT_EQ(big_back, ReversedFrame(big));
}

TEST_F(UpstreamTest, NoReachableBackendAnswersTheErrorFrameAndKeepsTheClient) {
  ASSERT_OK_AND_ASSIGN(LoopbackSocket refused, BindLoopback());  // bound, not listening: refused
  UpstreamOptions upstream;
  upstream.eject_after = 1;
  StartProxy({Address(refused.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip("anyone?"));
    EXPECT_EQ(response, "") << i;
  }
  EXPECT_TRUE(WaitUntil([&] { return Backend(Address(refused.port())).state == BackendState::kEjected; }));
  const BackendInfo info = Backend(Address(refused.port()));
  EXPECT_GT(info.errors[static_cast<int>(UpstreamError::kConnect)], 0u);
  EXPECT_EQ(info.ejections, 1u);
  EXPECT_EQ(SumStat(*proxy_,
                    [](const ReactorStats& s) {
                      return s.upstream_errors[static_cast<int>(UpstreamError::kNoBackend)].Get();
                    }),
            3u);
}

TEST_F(UpstreamTest, DrainUndrainRemoveAndAddChangeWhereRequestsGo) {
  Gateway& a = StartBackend();
  Gateway& b = StartBackend();
  const std::string address_a = Address(a.port());
  const std::string address_b = Address(b.port());
  StartProxy({address_a, address_b});
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(BackendInfo drained, proxy_->DrainBackend(address_b, absl::Seconds(10)));
  EXPECT_EQ(drained.state, BackendState::kDraining);
  EXPECT_EQ(drained.inflight, 0u);
  const uint64_t b_before = Backend(address_b).requests;
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip(absl::StrCat("to a ", i)));
    EXPECT_EQ(response, Reversed(absl::StrCat("to a ", i)));
  }
  EXPECT_EQ(Backend(address_b).requests, b_before);
  ASSERT_OK_AND_ASSIGN(BackendInfo undrained, proxy_->UndrainBackend(address_b));
  EXPECT_EQ(undrained.state, BackendState::kHealthy);
  ASSERT_OK_AND_ASSIGN(BackendInfo removed, proxy_->RemoveBackend(address_b, absl::Seconds(10)));
  EXPECT_EQ(removed.address, address_b);
  ASSERT_OK_AND_ASSIGN(std::vector<BackendInfo> listed, proxy_->ListBackends());
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].address, address_a);
  EXPECT_EQ(proxy_->GetBackend(address_b).status().code(), absl::StatusCode::kNotFound);
  ASSERT_OK_AND_ASSIGN(BackendInfo added, proxy_->AddBackend(BackendSpec{address_b, 3}));
  EXPECT_EQ(added.weight, 3u);
  EXPECT_EQ(added.state, BackendState::kHealthy);
  for (int i = 0; i < 40; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip(absl::StrCat("both ", i)));
    EXPECT_EQ(response, Reversed(absl::StrCat("both ", i)));
  }
  EXPECT_GT(Backend(address_b).requests, 0u);
  ASSERT_OK_AND_ASSIGN(BackendInfo weighted, proxy_->SetBackendWeight(address_b, 7));
  EXPECT_EQ(weighted.weight, 7u);
}

TEST_F(UpstreamTest, BackendCallsAnswerClearStatuses) {
  Gateway& a = StartBackend();
  const std::string address_a = Address(a.port());
  StartProxy({address_a});
  EXPECT_EQ(proxy_->AddBackend(BackendSpec{address_a, 1}).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(proxy_->AddBackend(BackendSpec{"no-port", 1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(proxy_->AddBackend(BackendSpec{"127.0.0.1:1", 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(proxy_->GetBackend("127.0.0.1:1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(proxy_->DrainBackend("127.0.0.1:1", absl::Seconds(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(proxy_->RemoveBackend("127.0.0.1:1", absl::Seconds(1)).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(proxy_->SetBackendWeight(address_a, 0).status().code(), absl::StatusCode::kInvalidArgument);
  // A gateway without --upstream has no backends to manage.
  EXPECT_EQ(a.ListBackends().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a.AddBackend(BackendSpec{address_a, 1}).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A backend that accepts and reads but never answers.
class SilentBackend {
 public:
  SilentBackend() {
    auto listening = ListenOnLoopback();
    EXPECT_TRUE(listening.ok());
    socket_ = *std::move(listening);
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = accept(socket_.fd(), nullptr, nullptr);
        if (fd < 0) return;
        accepted_.push_back(fd);
      }
    });
  }
  ~SilentBackend() {
    shutdown(socket_.fd(), SHUT_RDWR);
    thread_.join();
    for (int fd : accepted_) close(fd);
  }
  int port() const { return socket_.port(); }

 private:
  LoopbackSocket socket_;
  std::thread thread_;
  std::vector<int> accepted_;  // touched by the thread only until the join
};

TEST_F(UpstreamTest, TimedOutRequestsGetTheErrorFrameInTheirPlace) {
  Gateway& good = StartBackend();
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Milliseconds(300);
  upstream.eject_after = 1000;  // keep the silent one in rotation
  StartProxy({Address(good.port()), Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  // Round robin alternates: every other request waits for the timeout.
  std::string requests;
  for (int i = 0; i < 6; ++i) requests += Frame(absl::StrCat("r", i));
  ASSERT_OK(client.WriteAll(requests));
  int errors = 0;
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string response, client.ReadFrame());
    if (response.empty()) {
      ++errors;
    } else {
      EXPECT_EQ(response, Reversed(absl::StrCat("r", i)));
    }
  }
  EXPECT_EQ(errors, 3);
  EXPECT_EQ(Backend(Address(silent.port())).errors[static_cast<int>(UpstreamError::kTimeout)], 3u);
  // The client is still served.
  ASSERT_OK(client.WriteAll(Frame("again") + Frame("again")));
  ASSERT_OK_AND_ASSIGN(std::string first, client.ReadFrame());
  ASSERT_OK_AND_ASSIGN(std::string second, client.ReadFrame());
  EXPECT_EQ(first.empty() + second.empty(), 1);
}

TEST_F(UpstreamTest, ErrorModeCloseDeliversEarlierResponsesThenEof) {
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Milliseconds(200);
  upstream.error_mode = UpstreamErrorMode::kClose;
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("lost")));
  ASSERT_OK_AND_ASSIGN(std::string rest, client.ReadUntilEof());
  EXPECT_EQ(rest, "");
  client = TestClient();  // our FIN ends the gateway's linger
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*proxy_, CloseReason::kUpstreamError) == 1; }));
}

TEST_F(UpstreamTest, ABackendThatDiesFailsOnlyWhatItHeld) {
  Gateway& a = StartBackend();
  Gateway& b = StartBackend();
  StartProxy({Address(a.port()), Address(b.port())}, {}, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK_AND_ASSIGN(std::string warm, client.RoundTrip("warm"));
  EXPECT_EQ(warm, "mraw");
  backends_[1]->Shutdown(absl::ZeroDuration());
  // Every request gets one answer, in order: its payload or the error frame.
  int errors = 0;
  for (int i = 0; i < 50; ++i) {
    ASSERT_OK_AND_ASSIGN(std::string response, client.RoundTrip(absl::StrCat("after ", i)));
    if (response.empty()) {
      ++errors;
    } else {
      EXPECT_EQ(response, Reversed(absl::StrCat("after ", i)));
    }
  }
  EXPECT_LE(errors, 1);
  EXPECT_GT(Backend(Address(a.port())).responses, 40u);
}

TEST_F(UpstreamTest, ConnectionReportsItsRequestsInFlight) {
  SilentBackend silent;
  UpstreamOptions upstream;
  upstream.timeout = absl::Seconds(30);
  StartProxy({Address(silent.port())}, upstream, /*reactors=*/1);
  TestClient client = Connect();
  ASSERT_OK(client.WriteAll(Frame("one") + Frame("two")));
  EXPECT_TRUE(WaitUntil([&] {
    auto info = FindConnection(*proxy_, client);
    return info.ok() && info->upstream_inflight == 2 && info->state == ConnectionState::kProcess;
  }));
  EXPECT_TRUE(WaitUntil([&] { return Backend(Address(silent.port())).inflight == 2; }));
}

class RecordingBackendObserver : public BackendObserver {
 public:
  void OnBackendEvent(const BackendEvent& event) override {
    std::lock_guard<std::mutex> lock(mu_);
    states_.push_back(event.backend.state);
  }
  std::vector<BackendState> states() {
    std::lock_guard<std::mutex> lock(mu_);
    return states_;
  }

 private:
  std::mutex mu_;
  std::vector<BackendState> states_;
};

// A backend on a port of its own that can be turned off (every connection
// closed as soon as it is accepted) and on (frames answered reversed), so a
// test can take it down and bring it back without giving up its port.
class SwitchableBackend {
 public:
  SwitchableBackend() {
    auto listening = ListenOnLoopback();
    EXPECT_TRUE(listening.ok());
    socket_ = *std::move(listening);
    acceptor_ = std::thread([this] {
      for (;;) {
        const int fd = accept(socket_.fd(), nullptr, nullptr);
        if (fd < 0) return;
        if (!serving_.load()) {
          close(fd);
          continue;
        }
        std::lock_guard<std::mutex> lock(mu_);
        servers_.emplace_back([fd] { Serve(fd); });
      }
    });
  }
  ~SwitchableBackend() {
    shutdown(socket_.fd(), SHUT_RDWR);
    acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : servers_) t.detach();  // each ends when the gateway closes its side
  }
  int port() const { return socket_.port(); }
  void set_serving(bool serving) { serving_.store(serving); }

 private:
  // Answers whole frames reversed until the peer closes.
  static void Serve(int fd) {
    std::string in;
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
      while (in.size() >= 5) {
        const size_t len = static_cast<size_t>(std::stoi(in.substr(0, 5)));
        if (in.size() < 5 + len) break;
        const std::string out = ReversedFrame(in.substr(5, len));
        in.erase(0, 5 + len);
        if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) break;
      }
    }
    close(fd);
  }

  LoopbackSocket socket_;
  std::atomic<bool> serving_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> servers_;
};

TEST_F(UpstreamTest, AnEjectedBackendReturnsOnlyAfterAProbeSucceeds) {
  SwitchableBackend flaky;
  UpstreamOptions upstream;
  upstream.eject_after = 1;
  upstream.eject_backoff = absl::Milliseconds(50);
  upstream.probe_interval = absl::Milliseconds(30);
  upstream.rise = 1;
  StartProxy({Address(flaky.port())}, upstream, /*reactors=*/2, /*probes=*/true);
  auto observer = std::make_shared<RecordingBackendObserver>();
  ASSERT_OK(proxy_->AddBackendObserver(observer));
  TestClient client = Connect();
  // Connections are closed at once: the backend fails, is ejected, and its
  // probes fail too.
  EXPECT_TRUE(WaitUntil([&] { return Backend(Address(flaky.port())).state == BackendState::kEjected; }));
  ASSERT_OK_AND_ASSIGN(std::string refused, client.RoundTrip("nobody"));
  EXPECT_EQ(refused, "");
  EXPECT_TRUE(WaitUntil([&] { return Backend(Address(flaky.port())).probes_failed > 0; }));
  EXPECT_EQ(Backend(Address(flaky.port())).state, BackendState::kEjected);  // probes failing: it stays out
  flaky.set_serving(true);
  EXPECT_TRUE(WaitUntil([&] { return Backend(Address(flaky.port())).state == BackendState::kHealthy; }));
  EXPECT_GT(Backend(Address(flaky.port())).probes_ok, 0u);
  // The registry says healthy first; each reactor hears it a moment later
  // (until then a request may still get the error response).
  EXPECT_TRUE(WaitUntil([&] {
    absl::StatusOr<std::string> served = client.RoundTrip("somebody");
    return served.ok() && *served == "ydobemos";
  }));
  // The ejection may come before the observer (the first connects at start
  // fail); the way back comes after it.
  const std::vector<BackendState> states = observer->states();
  ASSERT_FALSE(states.empty());
  EXPECT_EQ(states.back(), BackendState::kHealthy);
  proxy_->RemoveBackendObserver(observer.get());
}

}  // namespace
}  // namespace gateway::testing
