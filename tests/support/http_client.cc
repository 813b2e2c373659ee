// Plain sockets and poll() so every wait has a deadline and nothing needs a
// third-party HTTP library.
#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace gateway::testing {
namespace {

int RemainingMs(absl::Time deadline) {
  const absl::Duration left = deadline - absl::Now();
  return left <= absl::ZeroDuration() ? 0 : static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
}

absl::Status WaitFor(int fd, short events, absl::Time deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    const int ms = RemainingMs(deadline);
    if (ms == 0) return absl::DeadlineExceededError("HTTP request timed out");
    const int n = poll(&p, 1, ms);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) return absl::InternalError(absl::StrCat("poll: ", strerror(errno)));
  }
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

absl::StatusOr<HttpResponse> ParseResponse(const std::string& raw) {
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || !absl::StartsWith(raw, "HTTP/1.")) {
    return absl::DataLossError(absl::StrCat("not an HTTP response: ", raw.substr(0, 200)));
  }
  HttpResponse response;
  response.headers = raw.substr(0, end);
  response.body = raw.substr(end + 4);
  const std::vector<absl::string_view> status_line = absl::StrSplit(raw.substr(0, raw.find("\r\n")), ' ');
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError("bad HTTP status line");
  }
  return response;
}

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(absl::string_view host, int port, absl::string_view target, absl::Time deadline) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, std::string(host).c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("not an IPv4 address: ", host));
  }
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
  }
  if (absl::Status s = WaitFor(fd.get(), POLLOUT, deadline); !s.ok()) return s;
  int error = 0;
  socklen_t len = sizeof error;
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) return absl::UnavailableError(absl::StrCat("connect: ", strerror(error)));

  const std::string request = absl::StrCat("GET ", target, " HTTP/1.0\r\nHost: ", host, ":", port,
                                           "\r\nAccept: */*\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (absl::Status s = WaitFor(fd.get(), POLLOUT, deadline); !s.ok()) return s;
    } else {
      return absl::UnavailableError(absl::StrCat("send: ", strerror(errno)));
    }
  }
  std::string raw;
  char chunk[65536];
  while (true) {
    const ssize_t n = recv(fd.get(), chunk, sizeof chunk, 0);
    if (n > 0) {
      raw.append(chunk, static_cast<size_t>(n));
      if (raw.size() > (256u << 20)) return absl::ResourceExhaustedError("HTTP response over 256 MiB");
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status s = WaitFor(fd.get(), POLLIN, deadline); !s.ok()) return s;
    } else {
      return absl::UnavailableError(absl::StrCat("recv: ", strerror(errno)));
    }
  }
  return ParseResponse(raw);
}

std::string UrlEncode(absl::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

double Exposition::Value(const std::string& series) const {
  const auto it = samples.find(series);
  return it == samples.end() ? -1 : it->second;
}

double Exposition::Sum(absl::string_view name, const std::vector<std::string>& labels) const {
  double total = 0;
  bool found = false;
  for (const auto& [series, value] : samples) {
    const absl::string_view metric = absl::string_view(series).substr(0, series.find('{'));
    if (metric != name) continue;
    bool match = true;
    for (const std::string& label : labels) match = match && absl::StrContains(series, label);
    if (!match) continue;
    total += value;
    found = true;
  }
  return found ? total : -1;
}

int Exposition::Count(absl::string_view name) const {
  int count = 0;
  for (const auto& [series, value] : samples) {
    if (absl::string_view(series).substr(0, series.find('{')) == name) ++count;
  }
  return count;
}

absl::StatusOr<Exposition> ParseExposition(absl::string_view text) {
  Exposition out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      const std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() != 2) return absl::InvalidArgumentError(absl::StrCat("bad TYPE line: ", line));
      out.types[parts[0]] = parts[1];
      continue;
    }
    if (absl::ConsumePrefix(&line, "# HELP ")) {
      const size_t space = line.find(' ');
      out.help[std::string(line.substr(0, space))] =
          space == absl::string_view::npos ? "" : std::string(line.substr(space + 1));
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space == absl::string_view::npos) return absl::InvalidArgumentError(absl::StrCat("bad sample: ", line));
    const absl::string_view number = line.substr(space + 1);
    if (absl::EqualsIgnoreCase(number, "nan")) {
      value = std::numeric_limits<double>::quiet_NaN();
    } else if (!absl::SimpleAtod(number, &value)) {
      return absl::InvalidArgumentError(absl::StrCat("bad sample value: ", line));
    }
    out.samples[std::string(line.substr(0, space))] = value;
  }
  return out;
}

}  // namespace gateway::testing
