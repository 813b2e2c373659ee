// The io_uring back-end on real loopback sockets, driven by hand on the test
// thread: receives through the buffer ring, sends through SQEs, deferred
// shutdown and close, retiring (Quiesce/Release/Carry), multishot accept and
// the eventfd wake-up under DEFER_TASKRUN. Skipped where io_uring is refused.
#include "gateway/uring_poller.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <thread>
#include <vector>

#include "gateway/epoll_poller.h"
#include "gateway/event_loop.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

constexpr int kMaxTurns = 2000;  // every loop below gives up after this many waits

struct Recorder : PollHandler {
  void OnReady(uint32_t ready) override {
    seen |= ready;
    ++calls;
  }
  uint32_t seen = 0;
  int calls = 0;
};

std::string Pattern(size_t n, size_t seed = 0) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

void SetNonBlocking(int fd) { ASSERT_EQ(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0); }

int ListenLoopback(sockaddr_in* addr) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof *addr) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int Connect(const sockaddr_in& addr) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// A connected loopback TCP pair: `ours` (non-blocking, for the poller) and
// `peer` (blocking unless made otherwise).
struct TcpPair {
  TcpPair() {
    sockaddr_in addr;
    const int listen_fd = ListenLoopback(&addr);
    peer = Connect(addr);
    ours = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    close(listen_fd);
  }
  ~TcpPair() {
    if (ours >= 0) close(ours);
    if (peer >= 0) close(peer);
  }
  int ours = -1;
  int peer = -1;
};

class UringPollerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (absl::Status probe = ProbeIoModel(IoModel::kIoUring); !probe.ok()) GTEST_SKIP() << probe.message();
    absl::StatusOr<std::unique_ptr<UringPoller>> made = UringPoller::Create();
    ASSERT_TRUE(made.ok()) << made.status();
    poller_ = *std::move(made);
  }

  // One loop turn: waits (bounded) and dispatches.
  int Turn(Poller& poller, int timeout_ms = 20) {
    const int n = poller.Wait(timeout_ms, &events_);
    for (const Poller::Event& event : events_) event.handler->OnReady(event.ready);
    return n;
  }

  // Reads from `fd` through `poller` until `want` bytes came, EOF or an error.
  // Returns the bytes; *last is the final Readv result.
  std::string ReadAll(Poller& poller, int fd, size_t want, ssize_t* last) {
    std::string got;
    char buf[3000];  // not a multiple of the ring's buffers: chunks split across calls
    *last = 1;
    for (int turn = 0; turn < kMaxTurns && got.size() < want; ++turn) {
      Turn(poller);
      for (;;) {
        iovec iov[2] = {{buf, 1000}, {buf + 1000, sizeof buf - 1000}};
        const ssize_t n = poller.Readv(fd, iov, 2);
        if (n > 0) {
          got.append(buf, static_cast<size_t>(n));
          continue;
        }
        *last = n;
        break;
      }
      if (*last == 0 || (*last < 0 && errno != EAGAIN)) break;
    }
    return got;
  }

  // Reads the peer side until EOF, driving `poller` meanwhile.
  std::string DrainPeer(int peer, bool* eof) {
    SetNonBlocking(peer);
    std::string got;
    char buf[65536];
    *eof = false;
    for (int turn = 0; turn < kMaxTurns && !*eof; ++turn) {
      Turn(*poller_, 5);
      for (;;) {
        const ssize_t n = read(peer, buf, sizeof buf);
        if (n > 0) {
          got.append(buf, static_cast<size_t>(n));
          continue;
        }
        if (n == 0) *eof = true;
        break;
      }
    }
    return got;
  }

  std::unique_ptr<UringPoller> poller_;
  std::vector<Poller::Event> events_;
};

TEST_F(UringPollerTest, ProbeAndSetupErrorsSayWhatToDo) {
  EXPECT_TRUE(ProbeIoModel(IoModel::kIoUring).ok());
  const absl::Status refused = UringSetupError(EPERM);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(refused.message(),
            "io_uring_setup: Operation not permitted (EPERM): io_uring is refused here (kernel.io_uring_disabled, or "
            "a container seccomp profile: run the container with deploy/seccomp/io_uring.json); use "
            "--io_model=epoll");
  EXPECT_EQ(poller_->model(), IoModel::kIoUring);
  EXPECT_EQ(poller_->mode(), TriggerMode::kEdge);
}

TEST_F(UringPollerTest, ReceivedBytesArriveInOrderThenEof) {
  TcpPair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.ours, &handler, Poller::kReadable | Poller::kWritable, FdRole::kStream).ok());
  const std::string sent = Pattern(10000);
  for (size_t off = 0; off < sent.size(); off += 2500) {
    ASSERT_EQ(write(pair.peer, sent.data() + off, 2500), 2500);
  }
  ssize_t last;
  EXPECT_EQ(ReadAll(*poller_, pair.ours, sent.size(), &last), sent);
  EXPECT_TRUE(handler.seen & Poller::kReadable);
  EXPECT_TRUE(handler.seen & Poller::kWritable);  // reported at once, as epoll does

  ASSERT_EQ(write(pair.peer, "xyz", 3), 3);
  ASSERT_EQ(shutdown(pair.peer, SHUT_WR), 0);
  EXPECT_EQ(ReadAll(*poller_, pair.ours, 4, &last), "xyz");
  EXPECT_EQ(last, 0);
  EXPECT_TRUE(handler.seen & Poller::kHangup);
  char c;
  iovec iov{&c, 1};
  EXPECT_EQ(poller_->Readv(pair.ours, &iov, 1), 0);  // EOF stays EOF
  poller_->Close(pair.ours);
  pair.ours = -1;
}

TEST_F(UringPollerTest, NothingQueuedIsEagain) {
  TcpPair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.ours, &handler, Poller::kReadable, FdRole::kStream).ok());
  Turn(*poller_, 0);
  char c;
  iovec iov{&c, 1};
  errno = 0;
  EXPECT_EQ(poller_->Readv(pair.ours, &iov, 1), -1);
  EXPECT_EQ(errno, EAGAIN);
  poller_->Close(pair.ours);
  pair.ours = -1;
}

TEST_F(UringPollerTest, UnreadBytesAreCappedPerStreamAndTheRingRecoversWhenExhausted) {
  // More streams, each with more unread bytes than its cap, than the ring
  // has buffers for: receives stop (cap, or ENOBUFS) and resume as the
  // bytes are read, and every stream's bytes arrive whole and in order.
  constexpr int kStreams = 80;
  constexpr size_t kPerStream = 100 * 1024;
  static_assert(kStreams * UringPoller::kRecvCap > UringBufferRing::kCount * UringBufferRing::kSize);
  std::vector<std::unique_ptr<TcpPair>> pairs;
  std::vector<Recorder> handlers(kStreams);
  std::vector<std::string> data, got(kStreams);
  std::vector<size_t> written(kStreams, 0);
  for (int i = 0; i < kStreams; ++i) {
    pairs.push_back(std::make_unique<TcpPair>());
    ASSERT_GE(pairs.back()->ours, 0);
    SetNonBlocking(pairs.back()->peer);
    data.push_back(Pattern(kPerStream, static_cast<size_t>(i)));
    ASSERT_TRUE(poller_->Add(pairs[i]->ours, &handlers[i], Poller::kReadable, FdRole::kStream).ok());
  }
  auto write_more = [&] {
    for (int i = 0; i < kStreams; ++i) {
      while (written[i] < kPerStream) {
        const ssize_t n = write(pairs[i]->peer, data[i].data() + written[i], kPerStream - written[i]);
        if (n <= 0) break;
        written[i] += static_cast<size_t>(n);
      }
    }
  };
  // Nobody reads for a while: the ring fills up.
  for (int turn = 0; turn < 20; ++turn) {
    write_more();
    Turn(*poller_, 5);
  }
  EXPECT_GT(poller_->counters().cap_cancels, 0u);
  EXPECT_GT(poller_->counters().enobufs, 0u);
  size_t done = 0;
  char buf[16384];
  for (int turn = 0; turn < kMaxTurns && done < kStreams; ++turn) {
    write_more();
    Turn(*poller_, 5);
    done = 0;
    for (int i = 0; i < kStreams; ++i) {
      for (;;) {
        iovec iov{buf, sizeof buf};
        const ssize_t n = poller_->Readv(pairs[i]->ours, &iov, 1);
        if (n <= 0) break;
        got[i].append(buf, static_cast<size_t>(n));
      }
      if (got[i].size() == kPerStream) ++done;
    }
  }
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(got[i] == data[i]) << "stream " << i << ": " << got[i].size() << " of " << kPerStream << " bytes";
    poller_->Close(pairs[i]->ours);
    pairs[i]->ours = -1;
  }
  Turn(*poller_, 0);
  EXPECT_EQ(poller_->counters().free_buffers, UringBufferRing::kCount);  // every buffer came back
}

TEST_F(UringPollerTest, ResetIsEconnreset) {
  TcpPair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.ours, &handler, Poller::kReadable, FdRole::kStream).ok());
  Turn(*poller_, 0);  // the receive is armed before the reset
  const linger abort_on_close{1, 0};
  ASSERT_EQ(setsockopt(pair.peer, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close), 0);
  close(pair.peer);
  pair.peer = -1;
  ssize_t last;
  EXPECT_EQ(ReadAll(*poller_, pair.ours, 1, &last), "");
  EXPECT_EQ(last, -1);
  EXPECT_EQ(errno, ECONNRESET);
  EXPECT_EQ(handler.seen & Poller::kHangup, Poller::kHangup);
  poller_->Close(pair.ours);
  pair.ours = -1;
}

TEST_F(UringPollerTest, OneMebibyteToASlowReaderArrivesExactly) {
  TcpPair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.ours, &handler, Poller::kReadable | Poller::kWritable, FdRole::kStream).ok());
  Turn(*poller_, 0);
  const std::string data = Pattern(1 << 20, 3);
  constexpr size_t kPiece = 16 * 1024;
  // Nothing leaves before the next Wait: what does not fit under the cap is
  // not taken (in part, as send(2) would), then nothing is.
  const ssize_t first = poller_->Send(pair.ours, data.data(), UringPoller::kSendCap + 1000);
  EXPECT_EQ(first, static_cast<ssize_t>(UringPoller::kSendCap));
  size_t taken = first > 0 ? static_cast<size_t>(first) : 0;
  errno = 0;
  EXPECT_EQ(poller_->Send(pair.ours, data.data() + taken, kPiece), -1);
  EXPECT_EQ(errno, EAGAIN);

  SetNonBlocking(pair.peer);
  std::string received;
  int writable_reports = 0;
  char buf[8192];  // the slow reader: 8 KiB per turn
  for (int turn = 0; turn < 20 * kMaxTurns && received.size() < data.size(); ++turn) {
    handler.seen = 0;
    Turn(*poller_, 1);
    if (handler.seen & Poller::kWritable) ++writable_reports;
    if ((handler.seen & Poller::kWritable) && taken < data.size()) {
      // As a connection writes: until EAGAIN, a short count meaning "full".
      while (taken < data.size()) {
        const size_t len = std::min(kPiece, data.size() - taken);
        const ssize_t n = poller_->Send(pair.ours, data.data() + taken, len);
        if (n > 0) taken += static_cast<size_t>(n);
        if (n != static_cast<ssize_t>(len)) break;
      }
    }
    const ssize_t n = read(pair.peer, buf, sizeof buf);
    if (n > 0) received.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(taken, data.size());
  EXPECT_GT(writable_reports, 0);
  EXPECT_TRUE(received == data) << "received " << received.size() << " of " << data.size() << " bytes";
  poller_->Close(pair.ours);
  pair.ours = -1;
}

TEST_F(UringPollerTest, ShutdownWriteWaitsForQueuedSends) {
  TcpPair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.ours, &handler, Poller::kReadable | Poller::kWritable, FdRole::kStream).ok());
  const std::string data = Pattern(200 * 1024, 5);
  ASSERT_EQ(poller_->Send(pair.ours, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  EXPECT_EQ(poller_->ShutdownWrite(pair.ours), 0);
  bool eof;
  EXPECT_TRUE(DrainPeer(pair.peer, &eof) == data);
  EXPECT_TRUE(eof);
  poller_->Close(pair.ours);
  pair.ours = -1;
}

TEST_F(UringPollerTest, CloseWithQueuedSendsDeliversThemThenEof) {
  TcpPair pair;
  Recorder handler;
  ASSERT_TRUE(poller_->Add(pair.ours, &handler, Poller::kReadable | Poller::kWritable, FdRole::kStream).ok());
  const std::string data = Pattern(200 * 1024, 7);
  ASSERT_EQ(poller_->Send(pair.ours, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  poller_->Close(pair.ours);
  pair.ours = -1;  // the poller closes it once the bytes are out
  handler.calls = 0;
  bool eof;
  EXPECT_TRUE(DrainPeer(pair.peer, &eof) == data);
  EXPECT_TRUE(eof);
  EXPECT_EQ(handler.calls, 0);  // a closed fd's handler is never called again
}

TEST_F(UringPollerTest, RetiringHandsBackUnreadAndUnsentBytes) {
  for (const bool next_is_uring : {false, true}) {
    SCOPED_TRACE(next_is_uring ? "to io_uring" : "to epoll");
    absl::StatusOr<std::unique_ptr<UringPoller>> made = UringPoller::Create();
    ASSERT_TRUE(made.ok());
    std::unique_ptr<UringPoller> old_poller = *std::move(made);
    TcpPair pair;
    Recorder handler;
    ASSERT_TRUE(old_poller->Add(pair.ours, &handler, Poller::kReadable | Poller::kWritable, FdRole::kStream).ok());
    const std::string before = Pattern(6000, 11);
    ASSERT_EQ(write(pair.peer, before.data(), before.size()), static_cast<ssize_t>(before.size()));
    for (int turn = 0; turn < kMaxTurns && !(handler.seen & Poller::kReadable); ++turn) Turn(*old_poller);
    ASSERT_TRUE(handler.seen & Poller::kReadable);
    const std::string unsent = Pattern(5000, 13);
    ASSERT_EQ(old_poller->Send(pair.ours, unsent.data(), unsent.size()), static_cast<ssize_t>(unsent.size()));

    old_poller->Quiesce();
    Poller::Leftovers leftovers = old_poller->Release(pair.ours);
    EXPECT_FALSE(leftovers.unread.empty());
    EXPECT_EQ(leftovers.unread, before.substr(0, leftovers.unread.size()));
    EXPECT_FALSE(leftovers.eof);
    EXPECT_EQ(leftovers.error, 0);
    EXPECT_EQ(leftovers.unsent, unsent);  // queued, never submitted: exactly what Send took
    handler.calls = 0;
    old_poller.reset();
    EXPECT_EQ(handler.calls, 0);

    std::unique_ptr<Poller> next;
    if (next_is_uring) {
      absl::StatusOr<std::unique_ptr<UringPoller>> made_next = UringPoller::Create();
      ASSERT_TRUE(made_next.ok());
      next = *std::move(made_next);
    } else {
      next = std::make_unique<EpollPoller>(TriggerMode::kEdge);
    }
    next->Carry(pair.ours, leftovers.unread, leftovers.eof, leftovers.error);
    ASSERT_TRUE(next->Add(pair.ours, &handler, Poller::kReadable, FdRole::kStream).ok());
    const std::string after = Pattern(3000, 17);
    ASSERT_EQ(write(pair.peer, after.data(), after.size()), static_cast<ssize_t>(after.size()));
    ssize_t last;
    EXPECT_TRUE(ReadAll(*next, pair.ours, before.size() + after.size(), &last) == before + after);
    next->Close(pair.ours);
    pair.ours = -1;
  }
}

TEST_F(UringPollerTest, MultishotAcceptQueuesConnections) {
  sockaddr_in addr;
  const int listen_fd = ListenLoopback(&addr);
  ASSERT_GE(listen_fd, 0);
  SetNonBlocking(listen_fd);
  Recorder handler;
  ASSERT_TRUE(poller_->Add(listen_fd, &handler, Poller::kReadable, FdRole::kListener).ok());
  Turn(*poller_, 0);
  std::vector<int> clients;
  std::vector<uint16_t> client_ports;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(Connect(addr));
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ASSERT_EQ(getsockname(clients.back(), reinterpret_cast<sockaddr*>(&local), &len), 0);
    client_ports.push_back(ntohs(local.sin_port));
  }
  std::vector<uint16_t> accepted_ports;
  for (int turn = 0; turn < kMaxTurns && accepted_ports.size() < clients.size(); ++turn) {
    Turn(*poller_);
    for (;;) {
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      const int fd = poller_->Accept(listen_fd, reinterpret_cast<sockaddr*>(&peer), &len);
      if (fd < 0) {
        EXPECT_EQ(errno, EAGAIN);
        break;
      }
      EXPECT_EQ(fcntl(fd, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
      accepted_ports.push_back(ntohs(peer.sin_port));
      close(fd);
    }
  }
  EXPECT_EQ(accepted_ports, client_ports);  // in order
  EXPECT_TRUE(handler.seen & Poller::kReadable);

  // Muted, a listener accepts nothing; unmuted, the backlog comes through.
  ASSERT_TRUE(poller_->Modify(listen_fd, &handler, 0).ok());
  Turn(*poller_, 0);
  clients.push_back(Connect(addr));
  handler.seen = 0;
  Turn(*poller_, 0);
  EXPECT_EQ(handler.seen, 0u);
  ASSERT_TRUE(poller_->Modify(listen_fd, &handler, Poller::kReadable).ok());
  int fd = -1;
  for (int turn = 0; turn < kMaxTurns && fd < 0; ++turn) {
    Turn(*poller_);
    fd = poller_->Accept(listen_fd, nullptr, nullptr);
  }
  EXPECT_GE(fd, 0);
  if (fd >= 0) close(fd);

  // Retired, the queue of accepted connections is handed over.
  clients.push_back(Connect(addr));
  handler.seen = 0;
  for (int turn = 0; turn < kMaxTurns && !(handler.seen & Poller::kReadable); ++turn) Turn(*poller_);
  poller_->Quiesce();
  Poller::Leftovers leftovers = poller_->Release(listen_fd);
  EXPECT_EQ(leftovers.accepted.size(), 1u);
  for (int accepted : leftovers.accepted) close(accepted);
  for (int client : clients) close(client);
  close(listen_fd);
}

TEST_F(UringPollerTest, AcceptErrorIsReportedOnceThenReadinessAndAccept4ServeUntilFdsAreBack) {
  sockaddr_in addr;
  const int listen_fd = ListenLoopback(&addr);
  ASSERT_GE(listen_fd, 0);
  SetNonBlocking(listen_fd);
  Recorder handler;
  // The calls made below while no fd is free are made once before: UBSan's
  // type checks need an fd the first time they see a call.
  Turn(*poller_, 0);
  static_cast<PollHandler&>(handler).OnReady(0);
  ASSERT_TRUE(poller_->Add(listen_fd, &handler, Poller::kReadable, FdRole::kListener).ok());
  std::vector<int> clients;
  for (int i = 0; i < 2; ++i) clients.push_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  // No fd number left: io_uring takes the fd number before it looks for a
  // connection, so the multishot accept ends with EMFILE at once.
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int lowest_free = dup(0);
  ASSERT_GE(lowest_free, 0);
  close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  for (int turn = 0; turn < kMaxTurns && !(handler.seen & Poller::kReadable); ++turn) Turn(*poller_);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_TRUE(handler.seen & Poller::kReadable);
  const int first = poller_->Accept(listen_fd, nullptr, nullptr);
  const int first_errno = errno;
  EXPECT_EQ(first, -1);
  EXPECT_EQ(first_errno, EMFILE);
  // Then readiness (a poll) and accept4(2): no connection, no event, no spin.
  errno = 0;
  EXPECT_EQ(poller_->Accept(listen_fd, nullptr, nullptr), -1);
  EXPECT_EQ(errno, EAGAIN);
  handler.seen = 0;
  EXPECT_EQ(Turn(*poller_, 0), 0);
  for (int client : clients) {
    if (connect(client, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) ADD_FAILURE() << "connect";
  }
  for (int turn = 0; turn < kMaxTurns && !(handler.seen & Poller::kReadable); ++turn) Turn(*poller_);
  EXPECT_TRUE(handler.seen & Poller::kReadable);  // the poll
  // accept4(2) serves the backlog; its EAGAIN after a success re-arms the multishot accept.
  std::vector<int> accepted;
  for (int fd; (fd = poller_->Accept(listen_fd, nullptr, nullptr)) >= 0;) accepted.push_back(fd);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(accepted.size(), clients.size());
  clients.push_back(Connect(addr));
  handler.seen = 0;
  int fd = -1;
  for (int turn = 0; turn < kMaxTurns && fd < 0; ++turn) {
    Turn(*poller_);
    fd = poller_->Accept(listen_fd, nullptr, nullptr);
  }
  EXPECT_GE(fd, 0);
  EXPECT_TRUE(handler.seen & Poller::kReadable);  // from the re-armed multishot
  if (fd >= 0) accepted.push_back(fd);
  for (int a : accepted) close(a);
  for (int c : clients) close(c);
  poller_->Close(listen_fd);
}

TEST_F(UringPollerTest, EventfdWritesFromAnotherThreadWakeAWaitWithoutTimeout) {
  const int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  Recorder handler;
  ASSERT_TRUE(poller_->Add(efd, &handler, Poller::kReadable, FdRole::kNotify).ok());
  EXPECT_EQ(Turn(*poller_, 0), 0);  // the poll is armed, nothing to report
  for (int round = 0; round < 3; ++round) {
    handler.seen = 0;
    std::thread writer([efd] {
      const uint64_t one = 1;
      EXPECT_EQ(write(efd, &one, sizeof one), static_cast<ssize_t>(sizeof one));
    });
    int n = 0;
    for (int turn = 0; turn < 10 && n == 0; ++turn) n = Turn(*poller_, -1);  // -1: only a wakeup returns
    writer.join();
    EXPECT_EQ(n, 1);
    EXPECT_EQ(handler.seen, Poller::kReadable);
    uint64_t count;
    EXPECT_EQ(read(efd, &count, sizeof count), static_cast<ssize_t>(sizeof count));
  }
  poller_->Close(efd);
}

TEST_F(UringPollerTest, PostFromAnotherThreadWakesTheLoop) {
  poller_.reset();  // the loop makes its own
  EventLoop loop;
  loop.BindToCurrentThread();
  absl::StatusOr<std::unique_ptr<Poller>> made = MakePoller(IoModel::kIoUring, TriggerMode::kEdge);
  ASSERT_TRUE(made.ok()) << made.status();
  ASSERT_TRUE(loop.InstallPoller(*std::move(made)).ok());
  loop.Wait(0);
  loop.Dispatch();
  std::atomic<int> ran{0};
  std::thread poster([&] { EXPECT_TRUE(loop.Post([&ran] { ++ran; })); });
  for (int turn = 0; turn < 10 && ran.load() == 0; ++turn) {
    loop.Wait(-1);
    loop.Dispatch();
  }
  poster.join();
  EXPECT_EQ(ran.load(), 1);
  loop.Close();
}

}  // namespace
}  // namespace gateway
