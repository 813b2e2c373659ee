// The select, poll and signal-driven back-ends on the test thread, over
// socketpairs and loopback TCP: what each reports, and the limits of each.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "gateway/poll_poller.h"
#include "gateway/poller.h"
#include "gateway/select_poller.h"
#include "gateway/signal_poller.h"
#include "gtest/gtest.h"

namespace gateway {

// Test names and failures show "poll", not a byte.
void PrintTo(IoModel model, std::ostream* os) { *os << IoModelName(model); }

namespace {

// Records what it was told. Test-thread only.
struct Recorder : PollHandler {
  void OnReady(uint32_t ready) override {
    seen |= ready;
    ++calls;
  }
  uint32_t seen = 0;
  int calls = 0;
};

// One Wait(): the mask each handler got (merged if reported twice).
absl::flat_hash_map<PollHandler*, uint32_t> WaitOnce(Poller& poller, int timeout_ms) {
  std::vector<Poller::Event> events;
  poller.Wait(timeout_ms, &events);
  absl::flat_hash_map<PollHandler*, uint32_t> by_handler;
  for (const Poller::Event& event : events) by_handler[event.handler] |= event.ready;
  return by_handler;
}

// Waits until `handler` gets an event (at most 50 waits of 100 ms) and
// returns its mask, 0 if none came.
uint32_t WaitFor(Poller& poller, PollHandler* handler) {
  for (int i = 0; i < 50; ++i) {
    auto got = WaitOnce(poller, 100);
    if (auto it = got.find(handler); it != got.end()) return it->second;
  }
  return 0;
}

// A connected pair of non-blocking stream sockets; closes what is still open.
struct Pair {
  Pair() {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
    a = fds[0];
    b = fds[1];
  }
  ~Pair() {
    if (a >= 0) close(a);
    if (b >= 0) close(b);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  int a;
  int b;
};

void WriteAll(int fd, const std::string& bytes) {
  ASSERT_EQ(write(fd, bytes.data(), bytes.size()), ssize_t(bytes.size()));
}

std::string ReadSome(int fd) {
  char buf[256];
  const ssize_t n = read(fd, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

// Raises the soft RLIMIT_NOFILE to at least `want` (up to the hard limit).
bool EnsureFdLimit(rlim_t want) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur >= want) return true;
  if (limit.rlim_max < want) return false;
  limit.rlim_cur = want;
  return setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

class PollersTest : public ::testing::TestWithParam<IoModel> {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Poller>> made = MakePoller(GetParam(), TriggerMode::kLevel);
    ASSERT_TRUE(made.ok()) << made.status();
    poller_ = *std::move(made);
  }
  bool level() const { return poller_->mode() == TriggerMode::kLevel; }

  std::unique_ptr<Poller> poller_;
};

TEST_P(PollersTest, ModelAndMode) {
  EXPECT_EQ(poller_->model(), GetParam());
  EXPECT_EQ(poller_->mode(), GetParam() == IoModel::kSignal ? TriggerMode::kEdge : TriggerMode::kLevel);
}

TEST_P(PollersTest, ReadableWhenThePeerWritesAndAgainWhileUnreadIfLevel) {
  Pair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));  // nothing to read yet
  WriteAll(pair.b, "hello");
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kReadable);
  // Level back-ends report it again while it is unread; edge ones do not.
  EXPECT_EQ(WaitOnce(*poller_, 0).contains(&handler), level());
  EXPECT_EQ(ReadSome(pair.a), "hello");
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  // More bytes: a fresh report in every back-end.
  WriteAll(pair.b, "again");
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kReadable);
  EXPECT_EQ(ReadSome(pair.a), "again");
}

TEST_P(PollersTest, BytesAlreadyWaitingAtAddAreReported) {
  Pair pair;
  Recorder handler;
  WriteAll(pair.b, "early");
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kReadable);
  EXPECT_EQ(ReadSome(pair.a), "early");
}

TEST_P(PollersTest, WritableOnlyWithWriteInterest) {
  Pair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  ASSERT_TRUE(poller_->Modify(pair.a, &handler, Poller::kReadable | Poller::kWritable).ok());
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kWritable);
}

TEST_P(PollersTest, WritableAgainAfterThePeerDrainsAFullSocket) {
  Pair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable | Poller::kWritable, FdRole::kStream).ok());
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kWritable);
  const std::string chunk(4096, 'x');
  size_t queued = 0;
  for (int i = 0; i < 100000; ++i) {  // bounded: a socketpair holds far less
    const ssize_t n = write(pair.a, chunk.data(), chunk.size());
    if (n < 0) {
      ASSERT_EQ(errno, EAGAIN);
      break;
    }
    queued += static_cast<size_t>(n);
  }
  ASSERT_GT(queued, 0u);
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));  // full
  std::array<char, 65536> sink;
  size_t drained = 0;
  while (drained < queued) {
    const ssize_t n = read(pair.b, sink.data(), sink.size());
    ASSERT_GT(n, 0);
    drained += static_cast<size_t>(n);
  }
  EXPECT_EQ(drained, queued);
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kWritable);
}

TEST_P(PollersTest, InterestZeroSilencesUntilRestored) {
  Pair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
  ASSERT_TRUE(poller_->Modify(pair.a, &handler, 0).ok());
  WriteAll(pair.b, "muted");
  shutdown(pair.b, SHUT_WR);  // a hang-up is silenced too
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  ASSERT_TRUE(poller_->Modify(pair.a, &handler, Poller::kReadable).ok());
  EXPECT_EQ(WaitFor(*poller_, &handler) & Poller::kReadable, Poller::kReadable);
  EXPECT_EQ(ReadSome(pair.a), "muted");
}

TEST_P(PollersTest, PeerCloseIsReadableWithHangupWhenReading) {
  Pair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
  close(pair.b);
  pair.b = -1;
  const uint32_t ready = WaitFor(*poller_, &handler);
  EXPECT_EQ(ready & Poller::kReadable, Poller::kReadable);
  EXPECT_EQ(read(pair.a, nullptr, 0), 0);
}

// A FIN behind data: poll and signal say so (kHangup), so a connection that
// reads the data short still reads on to the EOF; select cannot tell, but
// being level-triggered it reports the EOF again.
TEST_P(PollersTest, FinBehindDataIsReportedAsAHangup) {
  Pair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
  WriteAll(pair.b, "last words");
  ASSERT_EQ(shutdown(pair.b, SHUT_WR), 0);
  const uint32_t ready = WaitFor(*poller_, &handler);
  const uint32_t expected = GetParam() == IoModel::kSelect ? Poller::kReadable : Poller::kReadable | Poller::kHangup;
  EXPECT_EQ(ready, expected);
  EXPECT_EQ(ReadSome(pair.a), "last words");
  EXPECT_EQ(read(pair.a, nullptr, 0), 0);
}

TEST_P(PollersTest, CloseThroughThePollerForgetsTheFd) {
  Pair first;
  Pair second;
  Recorder h1;
  Recorder h2;
  ASSERT_TRUE(poller_->Add(first.a, &h1, Poller::kReadable, FdRole::kStream).ok());
  ASSERT_TRUE(poller_->Add(second.a, &h2, Poller::kReadable, FdRole::kStream).ok());
  const int closed_fd = first.a;
  poller_->Close(closed_fd);
  first.a = -1;
  EXPECT_EQ(poller_->Modify(closed_fd, &h1, Poller::kReadable).code(), absl::StatusCode::kNotFound);
  WriteAll(second.b, "x");
  auto got = WaitOnce(*poller_, 1000);
  EXPECT_FALSE(got.contains(&h1));
  EXPECT_EQ(got[&h2], Poller::kReadable);
}

TEST_P(PollersTest, ListenerReadableWhenAClientConnects) {
  const int listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_GE(listen_fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(listen_fd, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  Recorder handler;
  ASSERT_TRUE(poller_->Add(listen_fd, &handler, Poller::kReadable, FdRole::kListener).ok());
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kReadable);
  const int accepted = poller_->Accept(listen_fd, nullptr, nullptr);
  EXPECT_GE(accepted, 0);
  // The accepted socket sees the client's bytes through the same back-end.
  Recorder stream;
  ASSERT_TRUE(poller_->Add(accepted, &stream, Poller::kReadable, FdRole::kStream).ok());
  ASSERT_EQ(write(client, "ping", 4), 4);
  EXPECT_EQ(WaitFor(*poller_, &stream), Poller::kReadable);
  EXPECT_EQ(ReadSome(accepted), "ping");
  poller_->Close(accepted);
  poller_->Close(listen_fd);
  close(client);
}

TEST_P(PollersTest, NotifyFdIsReported) {
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  Recorder handler;
  ASSERT_TRUE(poller_->Add(efd, &handler, Poller::kReadable, FdRole::kNotify).ok());
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  const uint64_t one = 1;
  ASSERT_EQ(write(efd, &one, sizeof one), ssize_t(sizeof one));
  EXPECT_EQ(WaitFor(*poller_, &handler), Poller::kReadable);
  uint64_t count = 0;
  ASSERT_EQ(read(efd, &count, sizeof count), ssize_t(sizeof count));
  EXPECT_EQ(count, 1u);
  EXPECT_FALSE(WaitOnce(*poller_, 0).contains(&handler));
  poller_->Close(efd);
}

TEST_P(PollersTest, ManyFdsEachReportedExactlyWhenReady) {
  constexpr int kPairs = 300;
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<Recorder> handlers(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_TRUE(poller_->Add(pairs[i]->a, &handlers[i], Poller::kReadable, FdRole::kStream).ok());
  }
  for (int i = 0; i < kPairs; i += 3) WriteAll(pairs[i]->b, "r");
  absl::flat_hash_map<PollHandler*, uint32_t> seen;
  for (int round = 0; round < 50 && static_cast<int>(seen.size()) < kPairs / 3; ++round) {
    for (auto& [handler, ready] : WaitOnce(*poller_, 100)) seen[handler] |= ready;
  }
  ASSERT_EQ(static_cast<int>(seen.size()), kPairs / 3);
  for (int i = 0; i < kPairs; ++i) {
    if (i % 3 == 0) {
      EXPECT_EQ(seen[&handlers[i]], Poller::kReadable) << i;
    } else {
      EXPECT_FALSE(seen.contains(&handlers[i])) << i;
    }
  }
  for (auto& pair : pairs) {
    poller_->Close(pair->a);
    pair->a = -1;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, PollersTest, ::testing::Values(IoModel::kSelect, IoModel::kPoll, IoModel::kSignal),
                         [](const ::testing::TestParamInfo<IoModel>& info) {
                           return std::string(IoModelName(info.param));
                         });

// --- select ---

TEST(SelectPollerTest, RefusesFdsAtOrAboveFdSetsize) {
  ASSERT_TRUE(EnsureFdLimit(1600)) << "cannot raise RLIMIT_NOFILE to 1600";
  Pair pair;
  constexpr int kHighFd = 1500;
  ASSERT_EQ(dup2(pair.a, kHighFd), kHighFd);
  SelectPoller poller;
  Recorder low;
  Recorder high;
  ASSERT_TRUE(poller.Add(pair.b, &low, Poller::kReadable, FdRole::kStream).ok());
  EXPECT_EQ(poller.Add(kHighFd, &high, Poller::kReadable, FdRole::kStream).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(poller.Add(FD_SETSIZE, &high, Poller::kReadable, FdRole::kStream).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(poller.Modify(kHighFd, &high, Poller::kReadable).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(poller.registered(), 1);
  // The refused fd is in no set: bytes for it wake nobody, the other fd still works.
  WriteAll(pair.b, "to-high");
  EXPECT_TRUE(WaitOnce(poller, 0).empty());
  WriteAll(pair.a, "to-low");
  EXPECT_EQ(WaitFor(poller, &low), Poller::kReadable);
  poller.Close(kHighFd);  // never registered: a plain close
  EXPECT_EQ(fcntl(kHighFd, F_GETFD), -1);
  EXPECT_EQ(poller.registered(), 1);
}

TEST(SelectPollerTest, PrunesAnFdClosedBehindItsBackInsteadOfFailing) {
  SelectPoller poller;
  Pair gone;
  Pair kept;
  Recorder h_gone;
  Recorder h_kept;
  ASSERT_TRUE(poller.Add(gone.a, &h_gone, Poller::kReadable, FdRole::kListener).ok());
  ASSERT_TRUE(poller.Add(kept.a, &h_kept, Poller::kReadable, FdRole::kStream).ok());
  close(gone.a);  // as ~Listener did off the loop thread
  gone.a = -1;
  EXPECT_TRUE(WaitOnce(poller, 0).empty());
  EXPECT_EQ(poller.registered(), 1);
  WriteAll(kept.b, "k");
  EXPECT_EQ(WaitFor(poller, &h_kept), Poller::kReadable);
}

// --- poll ---

TEST(PollPollerTest, HandlesTwoThousandFds) {
  constexpr int kPairs = 2000;
  ASSERT_TRUE(EnsureFdLimit(2 * kPairs + 100)) << "cannot raise RLIMIT_NOFILE";
  PollPoller poller;
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<Recorder> handlers(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_TRUE(poller.Add(pairs[i]->a, &handlers[i], Poller::kReadable, FdRole::kStream).ok());
  }
  EXPECT_EQ(poller.registered(), kPairs);
  EXPECT_TRUE(WaitOnce(poller, 0).empty());
  for (int i = 0; i < kPairs; i += 7) WriteAll(pairs[i]->b, "z");
  auto got = WaitOnce(poller, 1000);
  EXPECT_EQ(static_cast<int>(got.size()), (kPairs + 6) / 7);
  for (int i = 0; i < kPairs; i += 7) EXPECT_EQ(got[&handlers[i]], Poller::kReadable) << i;
  // Close every other fd (slots move by swap-with-last), then wake the rest.
  for (int i = 0; i < kPairs; i += 2) {
    poller.Close(pairs[i]->a);
    pairs[i]->a = -1;
  }
  EXPECT_EQ(poller.registered(), kPairs / 2);
  for (int i = 1; i < kPairs; i += 2) WriteAll(pairs[i]->b, "w");
  got = WaitOnce(poller, 1000);
  EXPECT_EQ(static_cast<int>(got.size()), kPairs / 2);
  for (int i = 1; i < kPairs; i += 2) EXPECT_EQ(got[&handlers[i]], Poller::kReadable) << i;
  for (int i = 0; i < kPairs; i += 2) EXPECT_FALSE(got.contains(&handlers[i])) << i;
}

TEST(PollPollerTest, PrunesAnFdClosedBehindItsBack) {
  PollPoller poller;
  Pair gone;
  Pair kept;
  Recorder h_gone;
  Recorder h_kept;
  ASSERT_TRUE(poller.Add(gone.a, &h_gone, Poller::kReadable, FdRole::kListener).ok());
  ASSERT_TRUE(poller.Add(kept.a, &h_kept, Poller::kReadable, FdRole::kStream).ok());
  close(gone.a);
  gone.a = -1;
  WriteAll(kept.b, "k");
  auto got = WaitOnce(poller, 1000);
  EXPECT_FALSE(got.contains(&h_gone));
  EXPECT_EQ(got[&h_kept], Poller::kReadable);
  EXPECT_EQ(poller.registered(), 1);
}

// --- signal-driven ---

std::unique_ptr<SignalPoller> MakeSignalPoller() {
  absl::StatusOr<std::unique_ptr<SignalPoller>> made = SignalPoller::Create();
  if (!made.ok()) {
    ADD_FAILURE() << made.status();
    return nullptr;
  }
  return *std::move(made);
}

TEST(SignalPollerTest, ArmsAndDisarmsOAsync) {
  Pair pair;
  {
    std::unique_ptr<SignalPoller> poller = MakeSignalPoller();
    ASSERT_NE(poller, nullptr);
    Recorder handler;
    ASSERT_TRUE(poller->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
    EXPECT_NE(fcntl(pair.a, F_GETFL) & O_ASYNC, 0);
    EXPECT_EQ(fcntl(pair.a, F_GETSIG), ReadinessSignal());
    f_owner_ex owner{};
    ASSERT_EQ(fcntl(pair.a, F_GETOWN_EX, &owner), 0);
    EXPECT_EQ(owner.type, F_OWNER_TID);
    EXPECT_EQ(owner.pid, gettid());
    poller->Release(pair.a);
    EXPECT_EQ(fcntl(pair.a, F_GETFL) & O_ASYNC, 0);
    ASSERT_TRUE(poller->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
    EXPECT_NE(fcntl(pair.a, F_GETFL) & O_ASYNC, 0);
  }
  EXPECT_EQ(fcntl(pair.a, F_GETFL) & O_ASYNC, 0);  // the destructor disarmed it
}

TEST(SignalPollerTest, SigioMeansARescanThatReportsEveryReadyFd) {
  std::unique_ptr<SignalPoller> poller = MakeSignalPoller();
  ASSERT_NE(poller, nullptr);
  constexpr int kPairs = 40;
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<Recorder> handlers(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_TRUE(poller->Add(pairs[i]->a, &handlers[i], Poller::kReadable, FdRole::kStream).ok());
    WriteAll(pairs[i]->b, "q");
  }
  auto first = WaitOnce(*poller, 1000);
  EXPECT_EQ(static_cast<int>(first.size()), kPairs);
  EXPECT_TRUE(WaitOnce(*poller, 0).empty());  // edge: nothing new
  // What the kernel sends when the RT queue is full: plain SIGIO, no fd.
  ASSERT_EQ(syscall(SYS_tgkill, getpid(), gettid(), SIGIO), 0);
  auto rescan = WaitOnce(*poller, 1000);
  EXPECT_EQ(poller->rescans(), 1u);
  EXPECT_EQ(static_cast<int>(rescan.size()), kPairs);
  for (int i = 0; i < kPairs; ++i) EXPECT_EQ(rescan[&handlers[i]], Poller::kReadable) << i;
}

TEST(SignalPollerTest, RealQueueOverflowIsHandledByARescan) {
  std::unique_ptr<SignalPoller> poller = MakeSignalPoller();
  ASSERT_NE(poller, nullptr);
  constexpr int kPairs = 64;
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<Recorder> handlers(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_TRUE(poller->Add(pairs[i]->a, &handlers[i], Poller::kReadable, FdRole::kStream).ok());
  }
  EXPECT_TRUE(WaitOnce(*poller, 0).empty());
  // A tiny pending-signal limit: most of the 64 readiness signals overflow.
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_SIGPENDING, &saved), 0);
  rlimit tiny = saved;
  tiny.rlim_cur = 4;
  ASSERT_EQ(setrlimit(RLIMIT_SIGPENDING, &tiny), 0);
  for (int i = 0; i < kPairs; ++i) WriteAll(pairs[i]->b, "o");
  auto got = WaitOnce(*poller, 1000);
  ASSERT_EQ(setrlimit(RLIMIT_SIGPENDING, &saved), 0);
  EXPECT_EQ(poller->rescans(), 1u);
  EXPECT_EQ(static_cast<int>(got.size()), kPairs);
  for (int i = 0; i < kPairs; ++i) EXPECT_EQ(got[&handlers[i]], Poller::kReadable) << i;
}

TEST(SignalPollerTest, StaleSignalsOfAnEarlierPollerAreDropped) {
  Pair pair;
  Recorder handler;
  {
    std::unique_ptr<SignalPoller> poller = MakeSignalPoller();
    ASSERT_NE(poller, nullptr);
    ASSERT_TRUE(poller->Add(pair.a, &handler, Poller::kReadable, FdRole::kStream).ok());
    WriteAll(pair.b, "s");  // queues a signal nobody reads
  }
  std::unique_ptr<SignalPoller> next = MakeSignalPoller();
  ASSERT_NE(next, nullptr);
  Recorder other;
  Pair fresh;
  ASSERT_TRUE(next->Add(fresh.a, &other, Poller::kReadable, FdRole::kStream).ok());
  EXPECT_TRUE(WaitOnce(*next, 0).empty());
}

}  // namespace
}  // namespace gateway
