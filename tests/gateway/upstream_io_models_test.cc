// Upstream mode on every reactor back-end, and across live switches of the
// IO model and trigger mode: the upstream connections move with the clients
// and no answer is lost, duplicated or reordered.
#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

class UpstreamIoModelTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    GATEWAY_SKIP_IF_UNAVAILABLE(GetParam());
    GatewayOptions backend_options;
    backend_options.reactors = 1;
    ASSERT_OK_AND_ASSIGN(backend_, StartTestGateway(backend_options));
    GatewayOptions options;
    options.reactors = 2;
    GetParam().ApplyTo(&options.reactor);
    options.upstream.backends = {BackendSpec{absl::StrCat("127.0.0.1:", backend_->port()), 1}};
    options.upstream.connections = 2;
    options.upstream.probe_interval = absl::ZeroDuration();
    ASSERT_OK_AND_ASSIGN(proxy_, StartTestGateway(options));
  }

  std::unique_ptr<Gateway> backend_;
  std::unique_ptr<Gateway> proxy_;
};

// Pipelined batches from several clients; each batch checked byte for byte.
TEST_P(UpstreamIoModelTest, ProxiesAndSurvivesLiveSwitches) {
  constexpr int kClients = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      absl::StatusOr<TestClient> client = TestClient::Connect(proxy_->port());
      if (!client.ok()) {
        ++failures;
        return;
      }
      std::mt19937_64 rng(300 + c);
      for (int round = 0; round < 100000 && !stop.load(); ++round) {
        std::string requests, expected;
        for (int f = 0; f < 16; ++f) {
          const std::string payload = RandomBytes(rng, 1 + rng() % (f == 0 ? 20000 : 300));
          requests += Frame(payload);
          expected += ReversedFrame(payload);
        }
        std::thread writer([&] {
          if (!client->WriteAll(requests).ok()) ++failures;
        });
        absl::StatusOr<std::string> got = client->ReadExactly(expected.size());
        writer.join();
        if (!got.ok() || *got != expected) {
          ++failures;
          return;
        }
        ++batches;
      }
    });
  }
  EXPECT_TRUE(WaitUntil([&] { return batches.load() >= 20 || failures.load() > 0; }));
  // Every live-switchable model in turn (those this host can run), then back.
  const IoModel start = GetParam().model;
  std::vector<IoModel> route;
  if (start != IoModel::kSignal) {
    for (IoModel model : {IoModel::kPoll, IoModel::kSelect, IoModel::kIoUring, IoModel::kEpoll}) {
      if (model != start && ProbeIoModel(model).ok()) route.push_back(model);
    }
    route.push_back(start);
  }
  for (IoModel model : route) {
    if (failures.load() > 0) break;
    const int before = batches.load();
    ASSERT_OK(proxy_->SetIoModel(model)) << IoModelName(model);
    if (model == IoModel::kEpoll) {
      ASSERT_OK(proxy_->SetTriggerMode(TriggerMode::kLevel));
      ASSERT_OK(proxy_->SetTriggerMode(TriggerMode::kEdge));
    }
    EXPECT_TRUE(WaitUntil([&] { return batches.load() >= before + 5 || failures.load() > 0; }))
        << "stalled on " << IoModelName(model);
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK_AND_ASSIGN(std::vector<BackendInfo> backends, proxy_->ListBackends());
  ASSERT_EQ(backends.size(), 1u);
  for (int e = 0; e < kNumUpstreamErrors; ++e) EXPECT_EQ(backends[0].errors[e], 0u) << e;
  EXPECT_EQ(backends[0].connections, 4u);  // 2 reactors x 2 connections, moved, never reopened
}

INSTANTIATE_TEST_SUITE_P(Backends, UpstreamIoModelTest, ::testing::ValuesIn(ReactorBackends()), BackendName());

}  // namespace
}  // namespace gateway::testing
