// UpstreamProber against in-test backends on 127.0.0.1: healthy, refusing,
// silent, garbling and closing ones; RemoveTarget and the destructor's
// guarantees. Results are awaited with bounded waits, never timed.
#include "gateway/upstream_prober.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gtest/gtest.h"
#include "tests/support/loopback.h"

namespace gateway {
namespace {

using ::gateway::testing::BindLoopback;
using ::gateway::testing::ListenOnLoopback;
using ::gateway::testing::LoopbackSocket;

constexpr absl::Duration kInterval = absl::Milliseconds(20);
constexpr absl::Duration kWait = absl::Seconds(20);  // bounds every wait; never reached when all is well

// A backend on its own thread: accepts every connection and answers each
// complete frame as its mode says. Stops and closes all on destruction.
class FakeBackend {
 public:
  enum class Mode { kReverse, kSilent, kGarbage, kEmpty, kClose };

  explicit FakeBackend(Mode mode) : mode_(mode) {
    absl::StatusOr<LoopbackSocket> listener = ListenOnLoopback();
    EXPECT_TRUE(listener.ok()) << listener.status();
    listener_ = std::move(*listener);
    EXPECT_EQ(pipe2(stop_, O_CLOEXEC), 0);
    thread_ = std::thread([this] { Run(); });
  }
  ~FakeBackend() {
    close(stop_[1]);
    thread_.join();
    close(stop_[0]);
  }

  std::string address() const { return absl::StrCat("127.0.0.1:", listener_.port()); }
  int frames() const { return frames_.load(); }
  int connections() const { return connections_.load(); }
  // Waits until `count` frames have arrived; false if that took over kWait.
  bool AwaitFrames(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoSeconds(kWait), [this, count] { return frames_.load() >= count; });
  }

 private:
  void Run() {
    std::vector<int> conns;
    absl::flat_hash_map<int, std::string> buffers;
    for (;;) {
      std::vector<pollfd> fds = {{stop_[0], POLLIN, 0}, {listener_.fd(), POLLIN, 0}};
      for (int fd : conns) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), -1) < 0) continue;
      if (fds[0].revents != 0) break;
      if (fds[1].revents != 0) {
        const int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) {
          conns.push_back(fd);
          ++connections_;
        }
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents != 0 && !Serve(fds[i].fd, &buffers[fds[i].fd])) {
          close(fds[i].fd);
          buffers.erase(fds[i].fd);
          conns.erase(std::find(conns.begin(), conns.end(), fds[i].fd));
        }
      }
    }
    for (int fd : conns) close(fd);
  }

  // Reads what is there and answers whole frames; false to close.
  bool Serve(int fd, std::string* in) {
    char chunk[4096];
    const ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return false;
    in->append(chunk, static_cast<size_t>(n));
    for (FrameScan scan = ScanFrame(*in); scan.status == FrameScan::Status::kFrame; scan = ScanFrame(*in)) {
      std::string payload = in->substr(scan.skip + kHeaderSize, scan.frame_size - kHeaderSize);
      in->erase(0, scan.skip + scan.frame_size);
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++frames_;
      }
      cv_.notify_all();
      std::string answer;
      switch (mode_) {
        case Mode::kReverse:
          std::reverse(payload.begin(), payload.end());
          answer = EncodeFrame(payload);
          break;
        case Mode::kSilent: break;
        case Mode::kGarbage: answer = "abcde"; break;
        case Mode::kEmpty: answer = "00000"; break;
        case Mode::kClose: return false;
      }
      if (!answer.empty() && send(fd, answer.data(), answer.size(), MSG_NOSIGNAL) != ssize_t(answer.size())) {
        return false;
      }
    }
    return true;
  }

  const Mode mode_;
  LoopbackSocket listener_;
  int stop_[2] = {-1, -1};
  // std::mutex, not absl::Mutex: Debian's Abseil is invisible to TSan.
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<int> frames_{0};  // written under mu_ so AwaitFrames wakes
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// Collects the prober's results per address.
class Results {
 public:
  UpstreamProber::Callback Callback() {
    return [this](const UpstreamProber::Result& result) { Add(result); };
  }
  void Add(const UpstreamProber::Result& result) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      by_address_[result.address].push_back(result);
    }
    cv_.notify_all();
  }
  // Waits until `address` has `count` results (bounded) and returns them all.
  std::vector<UpstreamProber::Result> Await(const std::string& address, size_t count) {
    std::unique_lock<std::mutex> lock(mu_);
    const bool enough =
        cv_.wait_for(lock, absl::ToChronoSeconds(kWait), [&] { return by_address_[address].size() >= count; });
    EXPECT_TRUE(enough) << address << ": fewer than " << count << " results";
    return by_address_[address];
  }
  size_t Count(const std::string& address) {
    std::lock_guard<std::mutex> lock(mu_);
    return by_address_[address].size();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  absl::flat_hash_map<std::string, std::vector<UpstreamProber::Result>> by_address_;  // guarded by mu_
};

std::string Loopback(int port) { return absl::StrCat("127.0.0.1:", port); }

TEST(UpstreamProberTest, HealthyBackendGivesOkResultsOverOneConnection) {
  FakeBackend backend(FakeBackend::Mode::kReverse);
  Results results;
  UpstreamProber prober(kInterval, absl::Seconds(10), "ping", results.Callback());
  prober.AddTarget(backend.address());  // before Start: queued
  prober.AddTarget(backend.address());  // a duplicate is ignored
  prober.Start();
  for (const UpstreamProber::Result& result : results.Await(backend.address(), 3)) {
    EXPECT_TRUE(result.ok) << result.error;
    EXPECT_EQ(result.error, "");
    ASSERT_TRUE(result.resolved.has_value());
    EXPECT_EQ(FormatAddress(*result.resolved), backend.address());
  }
  EXPECT_GE(backend.frames(), 3);
  EXPECT_EQ(backend.connections(), 1);  // persistent: every round on the first connection
}

TEST(UpstreamProberTest, ClosedPortIsRefused) {
  absl::StatusOr<LoopbackSocket> bound = BindLoopback();  // bound, not listening
  ASSERT_TRUE(bound.ok()) << bound.status();
  const std::string address = Loopback(bound->port());
  Results results;
  UpstreamProber prober(kInterval, absl::Seconds(10), "ping", results.Callback());
  prober.Start();
  prober.AddTarget(address);
  for (const UpstreamProber::Result& result : results.Await(address, 2)) {
    EXPECT_FALSE(result.ok);
    EXPECT_EQ(result.error, "connect: Connection refused");
    ASSERT_TRUE(result.resolved.has_value());
    EXPECT_EQ(FormatAddress(*result.resolved), address);
  }
}

TEST(UpstreamProberTest, BadPortFailsToResolve) {
  Results results;
  UpstreamProber prober(kInterval, absl::Seconds(10), "ping", results.Callback());
  prober.Start();
  prober.AddTarget("127.0.0.1:99999");
  const UpstreamProber::Result result = results.Await("127.0.0.1:99999", 1)[0];
  EXPECT_FALSE(result.ok);
  EXPECT_EQ(result.error, "resolve: bad port '99999'");
  EXPECT_FALSE(result.resolved.has_value());
}

struct BadBackendCase {
  FakeBackend::Mode mode;
  std::string error;
};

TEST(UpstreamProberTest, BadBackendsFailAndAreReconnected) {
  for (const BadBackendCase& c : std::vector<BadBackendCase>{
           {FakeBackend::Mode::kSilent, "timeout after 50ms"},
           {FakeBackend::Mode::kGarbage, "bad response header"},
           {FakeBackend::Mode::kEmpty, "empty response"},
           {FakeBackend::Mode::kClose, "closed by the backend"},
       }) {
    SCOPED_TRACE(c.error);
    FakeBackend backend(c.mode);
    Results results;
    UpstreamProber prober(kInterval, absl::Milliseconds(50), "ping", results.Callback());
    prober.Start();
    prober.AddTarget(backend.address());
    for (const UpstreamProber::Result& result : results.Await(backend.address(), 3)) {
      EXPECT_FALSE(result.ok);
      EXPECT_EQ(result.error, c.error);
      EXPECT_TRUE(result.resolved.has_value());
    }
    // Every failure closed the connection: each round sent its probe anew.
    EXPECT_TRUE(backend.AwaitFrames(3));
  }
}

TEST(UpstreamProberTest, RemoveTargetStopsItsResults) {
  FakeBackend removed(FakeBackend::Mode::kReverse);
  FakeBackend kept(FakeBackend::Mode::kReverse);
  Results results;
  UpstreamProber prober(kInterval, absl::Seconds(10), "ping", results.Callback());
  prober.Start();
  prober.AddTarget(removed.address());
  prober.AddTarget(kept.address());
  results.Await(removed.address(), 1);
  prober.RemoveTarget(removed.address());
  const size_t before = results.Count(removed.address());
  const size_t kept_before = results.Count(kept.address());
  results.Await(kept.address(), kept_before + 5);
  EXPECT_EQ(results.Count(removed.address()), before);
}

TEST(UpstreamProberTest, RemoveTargetFromTheCallback) {
  FakeBackend removed(FakeBackend::Mode::kReverse);
  FakeBackend kept(FakeBackend::Mode::kReverse);
  Results results;
  UpstreamProber* self = nullptr;
  const std::string removed_address = removed.address();
  UpstreamProber prober(kInterval, absl::Seconds(10), "ping", [&](const UpstreamProber::Result& result) {
    results.Add(result);
    if (result.address == removed_address) self->RemoveTarget(removed_address);
  });
  self = &prober;
  prober.AddTarget(removed.address());
  prober.AddTarget(kept.address());
  prober.Start();
  results.Await(removed.address(), 1);
  results.Await(kept.address(), 5);
  EXPECT_EQ(results.Count(removed.address()), 1u);
}

TEST(UpstreamProberTest, ReAddedTargetIsProbedAgain) {
  FakeBackend backend(FakeBackend::Mode::kReverse);
  Results results;
  UpstreamProber prober(kInterval, absl::Seconds(10), "ping", results.Callback());
  prober.Start();
  prober.AddTarget(backend.address());
  results.Await(backend.address(), 1);
  prober.RemoveTarget(backend.address());
  const size_t before = results.Count(backend.address());
  prober.AddTarget(backend.address());
  EXPECT_TRUE(results.Await(backend.address(), before + 2).back().ok);
}

TEST(UpstreamProberTest, DestructorReturnsWithProbesInFlight) {
  FakeBackend silent(FakeBackend::Mode::kSilent);
  absl::StatusOr<LoopbackSocket> bound = BindLoopback();
  ASSERT_TRUE(bound.ok()) << bound.status();
  Results results;
  {
    // A timeout no test waits out: the destructor must not wait for it.
    UpstreamProber prober(kInterval, absl::Hours(1), "ping", results.Callback());
    prober.Start();
    prober.AddTarget(silent.address());
    prober.AddTarget(Loopback(bound->port()));
    ASSERT_TRUE(silent.AwaitFrames(1));  // its probe is in flight
    results.Await(Loopback(bound->port()), 2);
  }
  EXPECT_EQ(results.Count(silent.address()), 0u);
}

TEST(UpstreamProberTest, DestructorWithoutStart) {
  Results results;
  UpstreamProber prober(kInterval, absl::Seconds(1), "ping", results.Callback());
  prober.AddTarget("127.0.0.1:1");
  prober.RemoveTarget("127.0.0.1:1");  // never waits before Start
}

}  // namespace
}  // namespace gateway
