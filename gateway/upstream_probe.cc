#include "gateway/upstream_probe.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gateway/frame_codec.h"
#include "gateway/host_port.h"
#include "gateway/log.h"

namespace gateway {
namespace {

constexpr size_t kReadChunk = 4096;

std::string ErrnoText(absl::string_view what, int err) { return absl::StrCat(what, ": ", std::strerror(err)); }

socklen_t LengthOf(const SocketAddress& address) {
  return address.sa.sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

// Resolves "host:port" to its first IPv4 or IPv6 address. getaddrinfo
// returns at once for numeric hosts; a name may block on DNS.
absl::StatusOr<SocketAddress> Resolve(const std::string& address) {
  absl::StatusOr<HostPort> split = SplitHostPort(address);
  if (!split.ok()) return split.status();
  if (!ParsePort(split->port)) return absl::InvalidArgumentError(absl::StrCat("bad port '", split->port, "'"));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(split->host.empty() ? nullptr : split->host.c_str(), split->port.c_str(), &hints, &list);
  if (rc != 0) {
    return absl::UnavailableError(rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc));
  }
  std::optional<SocketAddress> found;
  for (const addrinfo* ai = list; ai != nullptr && !found; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    SocketAddress resolved{};
    std::memcpy(&resolved, ai->ai_addr, std::min<size_t>(ai->ai_addrlen, sizeof resolved));
    found = resolved;
  }
  freeaddrinfo(list);
  if (!found) return absl::UnavailableError("no IPv4 or IPv6 address");
  return *found;
}

}  // namespace

UpstreamProbe::UpstreamProbe(std::string address, absl::Duration timeout, const std::string& payload)
    : address_(std::move(address)), timeout_(timeout), frame_(EncodeFrame(payload)) {
  if (payload.empty() || payload.size() > kMaxPayload) Die("upstream probe payload must be 1..99999 bytes");
}

UpstreamProbe::~UpstreamProbe() { CloseSocket(); }

std::optional<ProbeResult> UpstreamProbe::Begin(Clock::time_point now) {
  sent_ = 0;
  received_.clear();
  if (fd_ < 0) return Connect(now);
  return StartExchange(now);
}

pollfd UpstreamProbe::PollRequest() const {
  pollfd request{fd_, 0, 0};
  switch (phase_) {
    case Phase::kIdle:  // an open connection: notice the backend closing it
    case Phase::kReceiving: request.events = POLLIN; break;
    case Phase::kConnecting:
    case Phase::kSending: request.events = POLLOUT; break;
  }
  return request;
}

std::optional<ProbeResult> UpstreamProbe::OnReady(short revents, Clock::time_point now) {
  if (fd_ < 0 || revents == 0) return std::nullopt;
  switch (phase_) {
    case Phase::kIdle: DrainIdle(); return std::nullopt;
    case Phase::kConnecting: return FinishConnect(now);
    case Phase::kSending: return Send();
    case Phase::kReceiving: return Receive();
  }
  return std::nullopt;
}

std::optional<UpstreamProbe::Clock::time_point> UpstreamProbe::deadline() const {
  if (!in_round()) return std::nullopt;
  return deadline_;
}

std::optional<ProbeResult> UpstreamProbe::OnTick(Clock::time_point now) {
  if (!in_round() || now < deadline_) return std::nullopt;
  const std::string after = absl::StrCat("timeout after ", absl::FormatDuration(timeout_));
  return Fail(phase_ == Phase::kConnecting ? absl::StrCat("connect: ", after) : after);
}

std::optional<ProbeResult> UpstreamProbe::Connect(Clock::time_point now) {
  // Re-resolved on every reconnect, so a backend that moved is followed.
  resolved_.reset();
  absl::StatusOr<SocketAddress> address = Resolve(address_);
  if (!address.ok()) return Fail(absl::StrCat("resolve: ", address.status().message()));
  resolved_ = *address;
  fd_ = socket(address->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return Fail(ErrnoText("socket", errno));
  const int one = 1;
  setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // best effort: the probe is one small write
  if (connect(fd_, &address->sa, LengthOf(*address)) == 0) return StartExchange(now);
  // A non-blocking connect interrupted by a signal goes on in the background.
  if (errno != EINPROGRESS && errno != EINTR) return Fail(ErrnoText("connect", errno));
  phase_ = Phase::kConnecting;
  deadline_ = now + absl::ToChronoNanoseconds(timeout_);
  return std::nullopt;
}

std::optional<ProbeResult> UpstreamProbe::FinishConnect(Clock::time_point now) {
  int error = 0;
  socklen_t len = sizeof error;
  if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
  if (error != 0) return Fail(ErrnoText("connect", error));
  return StartExchange(now);
}

std::optional<ProbeResult> UpstreamProbe::StartExchange(Clock::time_point now) {
  phase_ = Phase::kSending;
  deadline_ = now + absl::ToChronoNanoseconds(timeout_);
  return Send();
}

std::optional<ProbeResult> UpstreamProbe::Send() {
  while (sent_ < frame_.size()) {
    const ssize_t n = send(fd_, frame_.data() + sent_, frame_.size() - sent_, MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return std::nullopt;  // the rest when poll says POLLOUT
    } else {
      return Fail(ErrnoText("send", n < 0 ? errno : EPIPE));
    }
  }
  phase_ = Phase::kReceiving;
  return Receive();
}

std::optional<ProbeResult> UpstreamProbe::Receive() {
  char chunk[kReadChunk];
  for (;;) {
    const ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      received_.append(chunk, static_cast<size_t>(n));
      if (std::optional<ProbeResult> result = CheckResponse()) return result;
    } else if (n == 0) {
      return Fail(received_.empty() ? "closed by the backend" : "closed by the backend mid-response");
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return std::nullopt;
    } else {
      return Fail(ErrnoText("recv", errno));
    }
  }
}

std::optional<ProbeResult> UpstreamProbe::CheckResponse() {
  const FrameScan scan = ScanFrame(received_);
  switch (scan.status) {
    case FrameScan::Status::kNeedMore:
      // Only CR/LF padding can grow without the frame completing.
      if (scan.skip > kMaxFrameSize) return Fail("bad response header");
      return std::nullopt;
    case FrameScan::Status::kError:
      if (absl::string_view(received_).substr(scan.skip, kHeaderSize) == "00000") return Fail("empty response");
      return Fail("bad response header");
    case FrameScan::Status::kFrame:
      // More than one frame per probe means the connection is out of step.
      if (scan.skip + scan.frame_size != received_.size()) return Fail("unexpected bytes after the response");
      return Succeed();
  }
  return std::nullopt;
}

void UpstreamProbe::DrainIdle() {
  // Between rounds the backend has nothing to say: EOF (an idle timeout on
  // its side) or stray bytes both mean the next round starts afresh.
  char chunk[kReadChunk];
  const ssize_t n = recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  CloseSocket();
}

ProbeResult UpstreamProbe::Succeed() {
  phase_ = Phase::kIdle;
  received_.clear();
  return ProbeResult{address_, true, "", resolved_};
}

ProbeResult UpstreamProbe::Fail(std::string error) {
  CloseSocket();
  phase_ = Phase::kIdle;
  received_.clear();
  return ProbeResult{address_, false, std::move(error), resolved_};
}

void UpstreamProbe::CloseSocket() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

}  // namespace gateway
