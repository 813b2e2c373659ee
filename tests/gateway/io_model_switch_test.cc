// Live IO-model switching: clients stream pipelined frames of mixed sizes
// while the gateway is moved at random among select, poll, epoll (level and
// edge) and io_uring hundreds of times; every response must come back byte
// for byte, in order. Also what the kernel says about the registrations
// (epoll's fdinfo) and select's fd limit.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gateway/gateway.h"
#include "gateway/poller.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/backends.h"
#include "tests/support/status_matchers.h"
#include "tests/support/test_client.h"

namespace gateway::testing {
namespace {

using ::testing::HasSubstr;

// The live-switchable back-ends this host can run.
std::vector<Backend> SwitchTargets() {
  std::vector<Backend> targets;
  for (const Backend& b : ReactorBackends()) {
    if (IsLiveSwitchable(b.model) && ProbeIoModel(b.model).ok()) targets.push_back(b);
  }
  return targets;
}

// Moves `gw` to `target`: the IO model, then (on epoll) the trigger mode.
absl::Status SwitchTo(Gateway& gw, const Backend& target) {
  if (absl::Status status = gw.SetIoModel(target.model); !status.ok()) return status;
  if (target.model == IoModel::kEpoll) return gw.SetTriggerMode(target.mode);
  return absl::OkStatus();
}

class IoModelSwitchTest : public ::testing::Test {
 protected:
  void StartGateway(int reactors = 2) {
    GatewayOptions options;
    options.reactors = reactors;
    ASSERT_OK_AND_ASSIGN(gw_, StartTestGateway(options));
  }
  void TearDown() override {
    if (gw_) gw_->Shutdown(absl::Seconds(5));
  }
  std::unique_ptr<Gateway> gw_;
};

TEST_F(IoModelSwitchTest, HundredsOfRandomSwitchesUnderLoadAreByteExact) {
  const std::vector<Backend> targets = SwitchTargets();
  if (targets.size() < 2) GTEST_SKIP() << "fewer than two switchable back-ends here";
  StartGateway();
  constexpr int kClients = 8;
  constexpr int kSwitches = 300;
  const absl::Time give_up = absl::Now() + absl::Seconds(120);
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      absl::StatusOr<TestClient> client = TestClient::Connect(gw_->port());
      if (!client.ok()) {
        ++failures;
        return;
      }
      std::mt19937_64 rng(1000 + c);
      for (int round = 0; round < 1'000'000 && !stop.load(); ++round) {
        std::string requests, expected;
        const int frames = 1 + static_cast<int>(rng() % 24);
        for (int f = 0; f < frames; ++f) {
          // Mostly small frames, some up to the protocol's maximum.
          const size_t size = rng() % 16 == 0 ? 1 + rng() % 99'999 : 1 + rng() % 300;
          const std::string payload = RandomBytes(rng, size);
          requests += Frame(payload);
          expected += ReversedFrame(payload);
        }
        std::thread writer([&] {
          if (!client->WriteAll(requests).ok()) ++failures;
        });
        absl::StatusOr<std::string> got = client->ReadExactly(expected.size());
        writer.join();
        if (!got.ok() || *got != expected) {
          ADD_FAILURE() << "client " << c << " round " << round << ": "
                        << (got.ok() ? "bytes differ" : got.status().ToString());
          ++failures;
          return;
        }
        ++batches;
      }
    });
  }
  std::mt19937_64 rng(7);
  int switches = 0;
  size_t current = 0;  // epoll edge, where the gateway starts
  ASSERT_EQ(targets[0].model, IoModel::kEpoll);
  for (; switches < kSwitches && failures.load() == 0 && absl::Now() < give_up; ++switches) {
    size_t next = rng() % (targets.size() - 1);
    if (next >= current) ++next;  // always a different back-end
    const int before = batches.load();
    ASSERT_OK(SwitchTo(*gw_, targets[next])) << "to " << targets[next];
    current = next;
    // Let some traffic through on each back-end (bounded: a stall fails below).
    WaitUntil([&] { return batches.load() > before || failures.load() > 0; }, absl::Now() + absl::Seconds(10));
  }
  stop.store(true);
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(switches, 100) << "too few switches in the time allowed";
  EXPECT_GT(batches.load(), switches) << "traffic did not keep flowing across switches";
  EXPECT_EQ(gw_->io_model(), targets[current].model);
  if (targets.size() > 2) EXPECT_GT(gw_->io_model_switches(), 0u);  // more than epoll's two modes
  // Nothing lost or left over: every connection still open answers.
  ASSERT_OK_AND_ASSIGN(TestClient last, TestClient::Connect(gw_->port()));
  ASSERT_OK_AND_ASSIGN(const std::string echoed, last.RoundTrip("abc"));
  EXPECT_EQ(echoed, "cba");
}

TEST_F(IoModelSwitchTest, RefusalsLeaveTheModelInPlace) {
  StartGateway();
  EXPECT_EQ(gw_->io_model(), IoModel::kEpoll);
  for (IoModel fixed : {IoModel::kBlocking, IoModel::kSignal}) {
    const absl::Status status = gw_->SetIoModel(fixed);
    EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr("start only"));
  }
  EXPECT_OK(gw_->SetIoModel(IoModel::kEpoll));  // already there: not a switch
  EXPECT_EQ(gw_->io_model(), IoModel::kEpoll);
  EXPECT_EQ(gw_->io_model_switches(), 0u);
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
  EXPECT_OK(client.RoundTrip("x"));
}

// epoll's registrations as the kernel shows them: /proc/self/fdinfo of each
// epoll instance lists "tfd: N events: MASK"; EPOLLET is bit 31.
absl::flat_hash_map<int, uint32_t> EpollRegistrations() {
  absl::flat_hash_map<int, uint32_t> events_by_fd;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec || target != "anon_inode:[eventpoll]") continue;
    std::ifstream info("/proc/self/fdinfo/" + entry.path().filename().string());
    std::string line;
    while (std::getline(info, line)) {
      std::istringstream words(line);
      std::string key, events_key;
      int tfd;
      std::string mask;
      if (!(words >> key) || key != "tfd:") continue;
      if (!(words >> tfd >> events_key >> mask) || events_key != "events:") continue;
      uint32_t events = 0;
      if (absl::SimpleHexAtoi(mask, &events)) events_by_fd[tfd] = events;
    }
  }
  return events_by_fd;
}

TEST_F(IoModelSwitchTest, KernelSeesTheRegistrationsTheGatewayReports) {
  StartGateway();
  std::vector<TestClient> clients;
  std::vector<int> server_fds;
  for (int i = 0; i < 6; ++i) {
    ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(gw_->port()));
    ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, client));
    server_fds.push_back(info.fd);
    clients.push_back(std::move(client));
  }
  const std::vector<Backend> targets = SwitchTargets();
  const std::vector<Backend> sequence = {{IoModel::kEpoll, TriggerMode::kLevel}, {IoModel::kPoll},
                                         {IoModel::kEpoll, TriggerMode::kEdge},  {IoModel::kIoUring},
                                         {IoModel::kEpoll, TriggerMode::kLevel}, {IoModel::kSelect},
                                         {IoModel::kEpoll, TriggerMode::kEdge}};
  for (const Backend& target : sequence) {
    if (!ProbeIoModel(target.model).ok()) continue;
    ASSERT_OK(SwitchTo(*gw_, target)) << target;
    for (TestClient& client : clients) ASSERT_OK(client.RoundTrip("ping"));
    ASSERT_OK_AND_ASSIGN(const ConnectionPage page, gw_->ListConnections(ListQuery{}));
    ASSERT_EQ(page.connections.size(), clients.size());
    const absl::flat_hash_map<int, uint32_t> registered = EpollRegistrations();
    for (const ConnectionInfo& info : page.connections) {
      EXPECT_EQ(info.io_model, target.model) << target;
      if (target.model != IoModel::kEpoll) {
        // No epoll instance watches it any more.
        EXPECT_FALSE(registered.contains(info.fd)) << "fd " << info.fd << " still in an epoll set on " << target;
        continue;
      }
      EXPECT_EQ(info.trigger_mode, target.mode);
      auto it = registered.find(info.fd);
      ASSERT_NE(it, registered.end()) << "fd " << info.fd << " not registered with epoll on " << target;
      const bool edge = (it->second & EPOLLET) != 0;
      EXPECT_EQ(edge, target.mode == TriggerMode::kEdge) << "fd " << info.fd << " events 0x" << std::hex << it->second;
    }
  }
}

// Holds fds so that the next ones the process opens are >= 1024.
class FdFiller {
 public:
  FdFiller() {
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    if (limit.rlim_cur < 2048 && limit.rlim_max >= 2048) {
      limit.rlim_cur = 2048;
      setrlimit(RLIMIT_NOFILE, &limit);
    }
    for (int fd = open("/dev/null", O_RDONLY | O_CLOEXEC); fd >= 0 && fd < FD_SETSIZE;
         fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) {
      fds_.push_back(fd);
    }
    if (!fds_.empty() && fds_.back() >= FD_SETSIZE) {
      close(fds_.back());  // the first number over the limit: for the gateway
      fds_.pop_back();
    }
  }
  ~FdFiller() { Release(); }
  void Release() {
    for (int fd : fds_) close(fd);
    fds_.clear();
  }
  bool ok() const { return !fds_.empty(); }

 private:
  std::vector<int> fds_;
};

TEST_F(IoModelSwitchTest, SelectRejectsAConnectionOnAHighFdAndCountsIt) {
  if (!ProbeIoModel(IoModel::kSelect).ok()) GTEST_SKIP() << "no select back-end";
  StartGateway(/*reactors=*/1);
  ASSERT_OK_AND_ASSIGN(TestClient low, TestClient::Connect(gw_->port()));
  ASSERT_OK(low.RoundTrip("low"));
  ASSERT_OK(gw_->SetIoModel(IoModel::kSelect));
  FdFiller filler;
  ASSERT_TRUE(filler.ok()) << "cannot raise the fd limit past 1024";
  // The client's own socket takes a high number too; the gateway's accepted
  // one is the next: >= 1024, so select cannot watch it.
  ASSERT_OK_AND_ASSIGN(TestClient high, TestClient::Connect(gw_->port()));
  EXPECT_OK(high.ExpectEof());
  EXPECT_TRUE(WaitUntil([&] { return ClosedCount(*gw_, CloseReason::kSelectFdLimit) == 1; }));
  EXPECT_EQ(SumStat(*gw_, &ReactorStats::rejected), 1u);
  ASSERT_OK(low.RoundTrip("still served"));
  filler.Release();
}

TEST_F(IoModelSwitchTest, SwitchToSelectIsRefusedWhileAConnectionSitsOnAHighFd) {
  if (!ProbeIoModel(IoModel::kSelect).ok()) GTEST_SKIP() << "no select back-end";
  StartGateway(/*reactors=*/1);
  FdFiller filler;
  ASSERT_TRUE(filler.ok()) << "cannot raise the fd limit past 1024";
  ASSERT_OK_AND_ASSIGN(TestClient high, TestClient::Connect(gw_->port()));
  ASSERT_OK_AND_ASSIGN(const ConnectionInfo info, FindConnection(*gw_, high));
  ASSERT_GE(info.fd, FD_SETSIZE);
  const absl::Status status = gw_->SetIoModel(IoModel::kSelect);
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("1 connection(s)"));
  EXPECT_EQ(gw_->io_model(), IoModel::kEpoll);
  EXPECT_EQ(gw_->io_model_switches(), 0u);
  ASSERT_OK(high.RoundTrip("served on epoll"));
  // Once it has gone, select is fine.
  high.Close();
  ASSERT_TRUE(WaitUntil([&] { return gw_->active_connections() == 0; }));
  EXPECT_OK(gw_->SetIoModel(IoModel::kSelect));
  filler.Release();
}

}  // namespace
}  // namespace gateway::testing
