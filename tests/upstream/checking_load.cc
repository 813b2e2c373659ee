// The load thread: fills each connection's pipeline up to `depth`, writes
// what poll() lets it, and checks every response against the FIFO of
// expected payloads as soon as it is whole.
#include "tests/upstream/checking_load.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gateway/frame_codec.h"
#include "tests/support/test_client.h"

namespace gateway::testing {

// One client connection, touched by the load thread only.
struct CheckingLoad::Conn {
  int index = 0;
  int fd = -1;
  bool dead = false;  // closed by the peer, reset, or a violation: no more checking
  uint64_t seq = 0;
  uint64_t answered = 0;
  std::deque<std::string> expected;  // reversed payloads, oldest first
  std::string out;                   // request bytes not yet written
  size_t out_off = 0;
  std::string in;  // response bytes not yet parsed
  std::mt19937_64 rng;
};

namespace {

constexpr size_t kMaxViolations = 10;

absl::StatusOr<int> ConnectNonBlocking(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int err = errno;
    close(fd);
    return absl::UnavailableError(absl::StrCat("connect 127.0.0.1:", port, ": ", std::strerror(err)));
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// A short printable rendering of `s` for messages.
std::string Show(const std::string& s) {
  std::string shown = s.size() > 40 ? s.substr(0, 40) + "..." : s;
  for (char& ch : shown) {
    if (!absl::ascii_isprint(static_cast<unsigned char>(ch))) ch = '?';
  }
  return absl::StrCat("\"", shown, "\" (", s.size(), " bytes)");
}

}  // namespace

CheckingLoad::CheckingLoad(const LoadOptions& options) : options_(options) {}

absl::StatusOr<std::unique_ptr<CheckingLoad>> CheckingLoad::Start(const LoadOptions& options) {
  std::unique_ptr<CheckingLoad> load(new CheckingLoad(options));
  for (int i = 0; i < options.connections; ++i) {
    absl::StatusOr<int> fd = ConnectNonBlocking(options.port);
    if (!fd.ok()) return fd.status();  // the destructor closes the earlier ones
    auto c = std::make_unique<Conn>();
    c->index = i;
    c->fd = *fd;
    c->rng.seed(options.seed * 1000003 + static_cast<uint64_t>(i));
    load->conns_.push_back(std::move(c));
  }
  load->started_ = absl::Now();
  load->thread_ = std::thread([raw = load.get()] { raw->Run(); });
  return load;
}

CheckingLoad::~CheckingLoad() {
  if (!finished_) Finish(Deadline(absl::Seconds(10)));
}

bool CheckingLoad::AwaitAnswered(uint64_t n, absl::Time deadline) const {
  return WaitUntil([&] { return answered() >= n || violations() > 0 || done_.load(); }, deadline) && answered() >= n;
}

LoadReport CheckingLoad::Finish(absl::Time deadline) {
  finish_deadline_ns_.store(absl::ToUnixNanos(deadline));
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  finished_ = true;
  for (auto& c : conns_) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
  }
  report_.sent = sent_.load();
  report_.ok = ok_.load();
  report_.errors = errors_.load();
  std::lock_guard<std::mutex> lock(mu_);
  return report_;
}

void CheckingLoad::Violation(Conn& c, std::string what) {
  c.dead = true;
  ++violation_count_;
  std::lock_guard<std::mutex> lock(mu_);
  if (report_.violations.size() < kMaxViolations) {
    report_.violations.push_back(absl::StrCat("conn ", c.index, " after ", c.answered, " answers: ", what));
  }
}

void CheckingLoad::Fill(Conn& c) {
  const uint64_t allowed = options_.max_rate == 0
                               ? UINT64_MAX
                               : static_cast<uint64_t>(absl::ToDoubleSeconds(absl::Now() - started_) *
                                                       static_cast<double>(options_.max_rate)) +
                                     static_cast<uint64_t>(options_.connections * options_.depth);
  while (!stopping_.load(std::memory_order_relaxed) && static_cast<int>(c.expected.size()) < options_.depth &&
         c.seq < options_.max_requests && sent_.load(std::memory_order_relaxed) < allowed) {
    std::string payload = absl::StrCat("c", c.index, "-", c.seq++, "-");
    const size_t span = options_.max_payload - options_.min_payload + 1;
    const size_t size = options_.min_payload + c.rng() % span;
    while (payload.size() < size) payload.push_back(static_cast<char>('a' + c.rng() % 26));
    c.out += Frame(payload);
    c.expected.push_back(Reversed(payload));
    sent_.fetch_add(1);
  }
}

void CheckingLoad::WriteSome(Conn& c) {
  while (c.out_off < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c.out_off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && (errno == ECONNRESET || errno == EPIPE)) {
      // A close-mode FIN followed by our write can come back as EPIPE; the
      // read side reports the EOF first, so only a real reset lands here.
      ++report_.resets;
      Violation(c, absl::StrCat("send: ", std::strerror(errno)));
      return;
    }
    Violation(c, absl::StrCat("send: ", std::strerror(errno)));
    return;
  }
  c.out.clear();
  c.out_off = 0;
}

void CheckingLoad::Parse(Conn& c) {
  size_t at = 0;
  while (!c.dead && c.in.size() - at >= kHeaderSize) {
    const char* header = c.in.data() + at;
    for (size_t i = 0; i < kHeaderSize; ++i) {
      if (!absl::ascii_isdigit(static_cast<unsigned char>(header[i]))) {
        Violation(c, absl::StrCat("bad response header ", Show(std::string(header, kHeaderSize))));
        return;
      }
    }
    const size_t len = HeaderPayloadLength(header);
    if (c.in.size() - at < kHeaderSize + len) break;
    std::string payload = c.in.substr(at + kHeaderSize, len);
    at += kHeaderSize + len;
    if (c.expected.empty()) {
      Violation(c, absl::StrCat("unsolicited response ", Show(payload)));
      return;
    }
    if (len == 0) {
      if (options_.error_mode == UpstreamErrorMode::kClose) {
        Violation(c, "an empty-frame error response in close mode");
        return;
      }
      errors_.fetch_add(1);
    } else if (payload == c.expected.front()) {
      ok_.fetch_add(1);
    } else {
      Violation(c, absl::StrCat("expected ", Show(c.expected.front()), " got ", Show(payload)));
      return;
    }
    c.expected.pop_front();
    ++c.answered;
  }
  c.in.erase(0, at);
}

void CheckingLoad::ReadSome(Conn& c) {
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      Parse(c);
      if (c.dead) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n < 0 && errno == ECONNRESET) {
      ++report_.resets;
      Violation(c, "connection reset");
      return;
    }
    if (n < 0) {
      Violation(c, absl::StrCat("recv: ", std::strerror(errno)));
      return;
    }
    // EOF.
    if (!c.in.empty()) {
      Violation(c, absl::StrCat("EOF inside a response: ", Show(c.in)));
    } else if (options_.error_mode == UpstreamErrorMode::kClose && !c.expected.empty()) {
      ++report_.closed;
      report_.lost += c.expected.size();
      c.dead = true;
      // Our FIN too: the gateway lingers for it before it counts the close.
      close(c.fd);
      c.fd = -1;
    } else {
      Violation(c, absl::StrCat("EOF with ", c.expected.size(), " requests outstanding"));
    }
    return;
  }
}

bool CheckingLoad::Quiet() const {
  for (const auto& c : conns_) {
    if (!c->dead && !c->expected.empty()) return false;
  }
  return true;
}

void CheckingLoad::Run() {
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  for (;;) {
    if (stopping_.load() && (Quiet() || absl::Now() >= absl::FromUnixNanos(finish_deadline_ns_.load()))) {
      break;
    }
    fds.clear();
    polled.clear();
    for (auto& c : conns_) {
      if (c->dead) continue;
      Fill(*c);
      short events = POLLIN;
      if (c->out_off < c->out.size()) events |= POLLOUT;
      fds.push_back({c->fd, events, 0});
      polled.push_back(c.get());
    }
    if (fds.empty()) {
      if (stopping_.load()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    if (poll(fds.data(), fds.size(), 10) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < fds.size(); ++i) {
      Conn& c = *polled[i];
      if (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ReadSome(c);
      if (!c.dead && (fds[i].revents & POLLOUT)) WriteSome(c);
      if (!c.dead && c.out_off < c.out.size()) WriteSome(c);  // fresh requests go out without waiting a turn
    }
  }
  report_.drained = Quiet();
  done_.store(true);
}

std::string Describe(const LoadReport& report) {
  std::string text =
      absl::StrCat("sent ", report.sent, ", ok ", report.ok, ", errors ", report.errors, ", resets ", report.resets,
                   ", closed ", report.closed, " (lost ", report.lost, "), drained ", report.drained);
  if (!report.violations.empty()) absl::StrAppend(&text, "; violations: ", absl::StrJoin(report.violations, "; "));
  return text;
}

}  // namespace gateway::testing
