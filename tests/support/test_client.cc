#include "tests/support/test_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"

namespace gateway::testing {
namespace {

absl::Status ErrnoStatus(absl::string_view what, int err) {
  if (err == ECONNRESET || err == EPIPE) {
    return absl::UnavailableError(absl::StrCat(what, ": connection reset (", std::strerror(err), ")"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60'000));
}

}  // namespace

absl::StatusOr<TestClient> TestClient::Connect(int port, absl::Time deadline, absl::string_view host) {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const std::string host_str(host);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
  if (inet_pton(AF_INET, host_str.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host_str.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    length = sizeof *v6;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("not an IP address: ", host));
  }
  const int fd = socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoStatus("socket", errno);
  TestClient client(fd);
  if (connect(fd, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    if (errno != EINPROGRESS) return ErrnoStatus(absl::StrCat("connect to port ", port), errno);
    if (absl::Status s = client.WaitFor(POLLOUT, deadline); !s.ok()) return s;
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return ErrnoStatus(absl::StrCat("connect to port ", port), err);
  }
  return client;
}

absl::StatusOr<TestClient> TestClient::Accept(int listen_fd, absl::Time deadline) {
  for (;;) {
    // Poll first: the listener may be blocking.
    pollfd p{listen_fd, POLLIN, 0};
    const int rc = poll(&p, 1, RemainingMs(deadline));
    if (rc < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
    if (rc == 0 && absl::Now() >= deadline) return absl::DeadlineExceededError("no connection to accept");
    if (rc <= 0) continue;
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) return TestClient(fd);
    if (errno != EINTR && errno != ECONNABORTED && errno != EAGAIN) return ErrnoStatus("accept4", errno);
  }
}

TestClient::~TestClient() { Close(); }

TestClient::TestClient(TestClient&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

TestClient& TestClient::operator=(TestClient&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

void TestClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

int TestClient::local_port() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

std::string TestClient::peer_name() const {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  char ip[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&addr)->sin6_addr, ip, sizeof ip);
    return absl::StrCat("[", ip, "]:", local_port());
  }
  inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addr)->sin_addr, ip, sizeof ip);
  return absl::StrCat(ip, ":", local_port());
}

absl::Status TestClient::WaitFor(short events, absl::Time deadline) const {
  for (;;) {
    pollfd p{fd_, events, 0};
    const int rc = poll(&p, 1, RemainingMs(deadline));
    if (rc > 0) return absl::OkStatus();  // errors and hang-ups surface in the next call
    if (rc < 0 && errno != EINTR) return ErrnoStatus("poll", errno);
    if (rc == 0 && absl::Now() >= deadline) return absl::DeadlineExceededError("deadline passed");
  }
}

absl::Status TestClient::WriteAll(absl::string_view data, absl::Time deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (absl::Status s = WaitFor(POLLOUT, deadline); !s.ok()) {
        return absl::DeadlineExceededError(absl::StrCat("write: ", sent, " of ", data.size(), " bytes sent"));
      }
      continue;
    }
    return ErrnoStatus("send", errno);
  }
  return absl::OkStatus();
}

absl::Status TestClient::WriteInPieces(absl::string_view data, size_t piece, absl::Time deadline) {
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  for (size_t pos = 0; pos < data.size(); pos += piece) {
    if (absl::Status s = WriteAll(data.substr(pos, piece), deadline); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TestClient::ReadExactly(size_t n, absl::Time deadline) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = recv(fd_, out.data() + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return absl::OutOfRangeError(absl::StrCat("EOF after ", got, " of ", n, " bytes"));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (absl::Status s = WaitFor(POLLIN, deadline); !s.ok()) {
        return absl::DeadlineExceededError(absl::StrCat("read: ", got, " of ", n, " bytes received"));
      }
      continue;
    }
    return ErrnoStatus(absl::StrCat("recv after ", got, " of ", n, " bytes"), errno);
  }
  return out;
}

absl::StatusOr<std::string> TestClient::ReadUntilEof(absl::Time deadline, size_t max_bytes) {
  std::string out;
  char chunk[64 * 1024];
  for (;;) {
    const ssize_t r = recv(fd_, chunk, sizeof chunk, 0);
    if (r > 0) {
      out.append(chunk, static_cast<size_t>(r));
      if (out.size() > max_bytes) return absl::ResourceExhaustedError("more than max_bytes before EOF");
      continue;
    }
    if (r == 0) return out;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (absl::Status s = WaitFor(POLLIN, deadline); !s.ok()) {
        return absl::DeadlineExceededError(absl::StrCat("no EOF; ", out.size(), " bytes received"));
      }
      continue;
    }
    return ErrnoStatus(absl::StrCat("recv after ", out.size(), " bytes"), errno);
  }
}

absl::StatusOr<std::string> TestClient::ReadFrame(absl::Time deadline) {
  absl::StatusOr<std::string> header = ReadExactly(kHeaderSize, deadline);
  if (!header.ok()) return header.status();
  for (char c : *header) {
    if (c < '0' || c > '9') return absl::DataLossError(absl::StrCat("bad response header '", *header, "'"));
  }
  const size_t length = HeaderPayloadLength(header->data());
  if (length == 0) return std::string();  // upstream mode's error response
  return ReadExactly(length, deadline);
}

absl::StatusOr<std::string> TestClient::RoundTrip(absl::string_view payload, absl::Time deadline) {
  if (absl::Status s = WriteAll(Frame(payload), deadline); !s.ok()) return s;
  return ReadFrame(deadline);
}

absl::Status TestClient::ExpectEof(absl::Time deadline) {
  absl::StatusOr<std::string> rest = ReadUntilEof(deadline, 1 << 20);
  if (!rest.ok()) return rest.status();
  if (!rest->empty()) return absl::FailedPreconditionError(absl::StrCat(rest->size(), " bytes before EOF"));
  return absl::OkStatus();
}

absl::Status TestClient::ShutdownWrite() {
  if (shutdown(fd_, SHUT_WR) != 0) return ErrnoStatus("shutdown", errno);
  return absl::OkStatus();
}

absl::Status TestClient::SetLingerZero() {
  linger l{};
  l.l_onoff = 1;
  l.l_linger = 0;
  if (setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0) return ErrnoStatus("SO_LINGER", errno);
  return absl::OkStatus();
}

absl::Status TestClient::SetReceiveBuffer(int bytes) {
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) != 0) return ErrnoStatus("SO_RCVBUF", errno);
  return absl::OkStatus();
}

absl::StatusOr<int> TestClient::UnackedBytes() const {
  int pending = 0;
  if (ioctl(fd_, SIOCOUTQ, &pending) != 0) return ErrnoStatus("SIOCOUTQ", errno);
  return pending;
}

std::string Frame(absl::string_view payload) { return EncodeFrame(payload); }

std::string Reversed(absl::string_view payload) { return std::string(payload.rbegin(), payload.rend()); }

std::string ReversedFrame(absl::string_view payload) { return EncodeFrame(Reversed(payload)); }

std::string RandomBytes(std::mt19937_64& rng, size_t size) {
  std::string out(size, '\0');
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    const uint64_t word = rng();
    std::memcpy(out.data() + i, &word, 8);
  }
  for (; i < size; ++i) out[i] = static_cast<char>(rng() & 0xff);
  return out;
}

bool WaitUntil(const std::function<bool()>& condition, absl::Time deadline) {
  for (;;) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool AwaitAcked(const TestClient& client, absl::Time deadline) {
  return WaitUntil(
      [&] {
        absl::StatusOr<int> unacked = client.UnackedBytes();
        return unacked.ok() && *unacked == 0;
      },
      deadline);
}

absl::StatusOr<std::unique_ptr<Gateway>> StartTestGateway(GatewayOptions options, absl::string_view listen) {
  options.listen_address = std::string(listen);
  absl::StatusOr<std::unique_ptr<Gateway>> gw = Gateway::Create(std::move(options));
  if (gw.ok()) (*gw)->Start();
  return gw;
}

absl::StatusOr<ConnectionInfo> FindConnection(Gateway& gw, const TestClient& client, absl::Time deadline) {
  const std::string peer = client.peer_name();
  for (;;) {
    absl::StatusOr<ConnectionPage> page = gw.ListConnections(ListQuery{});
    if (!page.ok()) return page.status();
    for (const ConnectionInfo& info : page->connections) {
      if (info.peer == peer) return info;
    }
    if (absl::Now() >= deadline) return absl::NotFoundError(absl::StrCat("no connection from ", peer));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

uint64_t SumStat(const Gateway& gw, const std::function<uint64_t(const ReactorStats&)>& get) {
  uint64_t total = 0;
  for (int i = 0; i < gw.num_reactors(); ++i) total += get(gw.reactor_stats(i));
  return total;
}

uint64_t SumStat(const Gateway& gw, RelaxedCounter ReactorStats::*counter) {
  uint64_t total = 0;
  for (int i = 0; i < gw.num_reactors(); ++i) total += (gw.reactor_stats(i).*counter).Get();
  return total;
}

uint64_t ClosedCount(const Gateway& gw, CloseReason reason) {
  return SumStat(gw, [reason](const ReactorStats& s) { return s.closed[static_cast<int>(reason)].Get(); });
}

}  // namespace gateway::testing
