#include "bench/soak/sampler.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "bench/proc_stat.h"

namespace soak {
namespace {

int64_t MillisLeft(Clock::time_point deadline) {
  return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

absl::StatusOr<int64_t> CountFds(pid_t pid) {
  const std::string path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return absl::NotFoundError(absl::StrCat(path, ": ", strerror(errno)));
  int64_t count = 0;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count;
}

absl::StatusOr<std::string> HttpGet(const std::string& host, int port, const std::string& path, int timeout_ms) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot resolve ", host));
  }
  sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(found->ai_addr);
  freeaddrinfo(found);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const int fd = ConnectTo(addr, timeout_ms);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("connect: ", strerror(errno)));
  const std::string request = absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host, "\r\n\r\n");
  size_t sent = 0;
  std::string reply;
  absl::Status error;
  while (error.ok()) {
    const bool sending = sent < request.size();
    const short ready = WaitFor(fd, sending ? POLLOUT : POLLIN, static_cast<int>(MillisLeft(deadline)));
    if (ready == 0) {
      error = absl::DeadlineExceededError("metrics scrape timed out");
      break;
    }
    if (sending) {
      const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) error = absl::UnavailableError(strerror(errno));
      continue;
    }
    char buffer[16384];
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n == 0) break;
    if (n > 0) reply.append(buffer, static_cast<size_t>(n));
    if (n < 0 && errno != EAGAIN && errno != EINTR) error = absl::UnavailableError(strerror(errno));
  }
  close(fd);
  if (!error.ok()) return error;
  const size_t body = reply.find("\r\n\r\n");
  if (!absl::StartsWith(reply, "HTTP/1.") || body == std::string::npos) {
    return absl::DataLossError("malformed HTTP reply");
  }
  if (reply.compare(9, 3, "200") != 0) return absl::UnavailableError(reply.substr(0, reply.find('\r')));
  return reply.substr(body + 4);
}

FlatCheck CheckFlat(const std::vector<double>& values, double relative_slack, double absolute_slack) {
  FlatCheck check;
  const size_t n = values.size();
  if (n < 8) return check;
  check.judged = true;
  check.second_quarter = Median(std::vector<double>(values.begin() + n / 4, values.begin() + n / 2));
  check.last_quarter = Median(std::vector<double>(values.begin() + 3 * n / 4, values.end()));
  check.limit = check.second_quarter * (1 + relative_slack) + absolute_slack;
  check.flat = check.last_quarter <= check.limit;
  return check;
}

Sampler::Sampler(const SoakTarget& target, std::shared_ptr<ControlStub> stub, const SamplerOptions& options)
    : Scenario(target, 8), stub_(std::move(stub)), options_(options) {
  if (!options_.csv_path.empty()) {
    csv_ = std::fopen(options_.csv_path.c_str(), "we");
    if (csv_ == nullptr) {
      SOAK_LOG("cannot write %s: %s\n", options_.csv_path.c_str(), strerror(errno));
    } else {
      std::fprintf(csv_,
                   "t_s,rss_bytes,fds,queued_bytes,queued_metric,active_connections,queued_bytes_stats,accepted,"
                   "closed_total,frame_timeout_closes,trigger_mode,frames_answered,lost,corrupt,scraped,stats_ok\n");
      std::fflush(csv_);
    }
  }
}

Sampler::~Sampler() {
  Join();
  if (csv_ != nullptr) std::fclose(csv_);
}

Sample Sampler::TakeSample() {
  Sample s;
  s.t_s = std::chrono::duration<double>(Clock::now() - options_.start).count();
  if (absl::StatusOr<int64_t> rss = bench::ProcessRssBytes(options_.pid); rss.ok()) s.rss_bytes = *rss;
  if (absl::StatusOr<int64_t> fds = CountFds(options_.pid); fds.ok()) s.fds = *fds;
  SoakCounters& c = counters();
  if (!options_.metrics_host.empty()) {
    const Clock::time_point called = Clock::now();
    absl::StatusOr<std::string> body =
        HttpGet(options_.metrics_host, options_.metrics_port, options_.metrics_path, 3000);
    RecordMaxMs(c.scrape_max_ms, called);
    if (body.ok()) {
      s.scraped = true;
      for (absl::string_view line : absl::StrSplit(*body, '\n')) {
        if (line.empty() || line[0] == '#') continue;
        const size_t name_end = line.find_first_of("{ ");
        const size_t value_start = line.rfind(' ');
        if (name_end == absl::string_view::npos || value_start == absl::string_view::npos) continue;
        const absl::string_view name = line.substr(0, name_end);
        double value = 0;
        if (!absl::SimpleAtod(line.substr(value_start + 1), &value)) continue;
        if (name == "gateway_queued_bytes") {
          s.queued_metric = true;
          s.queued_bytes += value;
        } else if (name == "gateway_connections_active") {
          s.active_metric = value;
        }
      }
    } else {
      c.scrape_failures.fetch_add(1);
    }
  }
  v1::Stats stats;
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
  const Clock::time_point called = Clock::now();
  const bool stats_ok = stub_->GetStats(context.get(), v1::GetStatsRequest(), &stats).ok();
  RecordMaxMs(c.stats_max_ms, called);
  if (stats_ok) {
    s.stats_ok = true;
    s.active = stats.active_connections();
    s.queued_bytes_stats = stats.totals().queued_bytes();
    s.accepted = stats.totals().accepted();
    s.closed_total = stats.totals().closed_total();
    s.frame_timeout_closes = stats.totals().closed().frame_timeout();
    s.trigger_mode = stats.trigger_mode();
  } else {
    c.stats_failures.fetch_add(1);
  }
  // The metric is the active count of record (a slow GetStats must not leave
  // a hole in the plot); GetStats fills in when there is no scrape.
  if (s.active_metric >= 0) s.active = static_cast<int64_t>(s.active_metric);
  s.frames_answered = Get(c.frames_answered);
  s.lost = Get(c.lost);
  s.corrupt = Get(c.corrupt);
  c.samples.fetch_add(1);
  return s;
}

void Sampler::WriteCsv(const Sample& s) {
  if (csv_ == nullptr) return;
  std::fprintf(csv_, "%.3f,%lld,%lld,%.0f,%d,%lld,%lld,%llu,%llu,%llu,%s,%llu,%llu,%llu,%d,%d\n", s.t_s,
               static_cast<long long>(s.rss_bytes), static_cast<long long>(s.fds), s.queued_bytes,
               s.queued_metric ? 1 : 0, static_cast<long long>(s.active), static_cast<long long>(s.queued_bytes_stats),
               static_cast<unsigned long long>(s.accepted), static_cast<unsigned long long>(s.closed_total),
               static_cast<unsigned long long>(s.frame_timeout_closes),
               s.trigger_mode == v1::TRIGGER_MODE_LEVEL  ? "level"
               : s.trigger_mode == v1::TRIGGER_MODE_EDGE ? "edge"
                                                         : "unknown",
               static_cast<unsigned long long>(s.frames_answered), static_cast<unsigned long long>(s.lost),
               static_cast<unsigned long long>(s.corrupt), s.scraped ? 1 : 0, s.stats_ok ? 1 : 0);
  std::fflush(csv_);
}

std::vector<Sample> Sampler::samples() {
  std::lock_guard<std::mutex> lock(mu_);
  return samples_;
}

void Sampler::Run() {
  // On whole seconds since the start, not drifting with the sample's own cost.
  int second = static_cast<int>(std::chrono::duration<double>(Clock::now() - options_.start).count());
  while (PaceUntil(options_.start + std::chrono::seconds(second))) {
    const Sample s = TakeSample();
    WriteCsv(s);
    {
      std::lock_guard<std::mutex> lock(mu_);
      samples_.push_back(s);
    }
    const int now = static_cast<int>(std::chrono::duration<double>(Clock::now() - options_.start).count());
    second = std::max(second + 1, now + 1);
  }
}

}  // namespace soak
