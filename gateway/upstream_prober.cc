#include "gateway/upstream_prober.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "gateway/log.h"

namespace gateway {
namespace {

int MakeWakeFd() {
  const int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) DieErrno("eventfd for the upstream prober");
  return fd;
}

// Milliseconds until `when` for poll(), rounded up so a deadline is never
// polled for early (which would spin); -1 = no deadline.
int PollTimeoutMs(std::chrono::steady_clock::time_point when, std::chrono::steady_clock::time_point now) {
  if (when == std::chrono::steady_clock::time_point::max()) return -1;
  if (when <= now) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(when - now).count();
  return static_cast<int>(std::min<int64_t>(ms, INT_MAX));
}

}  // namespace

UpstreamProber::UpstreamProber(absl::Duration interval, absl::Duration timeout, std::string payload, Callback callback)
    : interval_(interval),
      timeout_(timeout),
      payload_(std::move(payload)),
      callback_(std::move(callback)),
      wake_fd_(MakeWakeFd()),
      rng_(std::random_device{}()) {
  if (interval <= absl::ZeroDuration()) Die("upstream probe interval must be positive");
}

UpstreamProber::~UpstreamProber() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  applied_cv_.notify_all();
  Wake();
  if (thread_.joinable()) thread_.join();
  targets_.clear();  // closes the connections
  close(wake_fd_);
}

void UpstreamProber::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (running_ || stopping_) return;
  running_ = true;
  thread_ = std::thread([this] { Run(); });
}

void UpstreamProber::AddTarget(const std::string& address) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.push_back({true, address});
    ++queued_;
  }
  Wake();
}

void UpstreamProber::RemoveTarget(const std::string& address) {
  uint64_t mine;
  {
    std::lock_guard<std::mutex> lock(mu_);
    commands_.push_back({false, address});
    mine = ++queued_;
    // Before Start no callback runs; on the prober thread Deliver() applies
    // the command before the next callback.
    if (!running_ || std::this_thread::get_id() == prober_thread_id_) return;
  }
  Wake();
  std::unique_lock<std::mutex> lock(mu_);
  applied_cv_.wait(lock, [this, mine] { return applied_ >= mine || stopping_; });
}

void UpstreamProber::Run() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    prober_thread_id_ = std::this_thread::get_id();
  }
  while (ApplyCommands()) {
    Tick(Clock::now());
    if (!Deliver()) return;
    PollOnce(Clock::now());
    if (!Deliver()) return;
  }
}

bool UpstreamProber::ApplyCommands() {
  std::vector<Command> commands;
  uint64_t upto;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return false;
    if (applied_ == queued_) return true;
    commands.swap(commands_);
    upto = queued_;
  }
  const Clock::time_point now = Clock::now();
  for (Command& command : commands) {
    if (!command.add) {
      targets_.erase(command.address);
    } else if (!targets_.contains(command.address)) {
      auto target = std::make_unique<Target>(command.address, timeout_, payload_, next_id_++);
      target->next_round = now + Jittered(0.0, 1.0);  // new targets spread over the first interval
      targets_.emplace(std::move(command.address), std::move(target));
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    applied_ = upto;
  }
  applied_cv_.notify_all();
  return true;
}

void UpstreamProber::Tick(Clock::time_point now) {
  for (auto& [address, target] : targets_) {
    if (std::optional<Result> result = target->probe.OnTick(now)) done_.push_back({target->id, std::move(*result)});
    if (target->probe.in_round() || now < target->next_round) continue;
    // From this round's start, so a slow round does not shift the schedule;
    // a round longer than the interval delays the next one instead.
    target->next_round = now + Jittered(0.9, 1.1);
    if (std::optional<Result> result = target->probe.Begin(now)) done_.push_back({target->id, std::move(*result)});
  }
}

void UpstreamProber::PollOnce(Clock::time_point now) {
  std::vector<pollfd> fds = {{wake_fd_, POLLIN, 0}};
  std::vector<Target*> owners;
  Clock::time_point wake_at = Clock::time_point::max();
  for (auto& [address, target] : targets_) {
    const pollfd request = target->probe.PollRequest();
    if (request.fd >= 0) {
      fds.push_back(request);
      owners.push_back(target.get());
    }
    wake_at = std::min(wake_at, target->probe.deadline().value_or(target->next_round));
  }
  if (poll(fds.data(), fds.size(), PollTimeoutMs(wake_at, now)) < 0) {
    if (errno == EINTR) return;
    DieErrno("poll in the upstream prober");
  }
  if (fds[0].revents != 0) {
    uint64_t count;
    while (read(wake_fd_, &count, sizeof count) < 0 && errno == EINTR) {
    }
  }
  const Clock::time_point ready_at = Clock::now();
  for (size_t i = 1; i < fds.size(); ++i) {
    Target* target = owners[i - 1];
    if (std::optional<Result> result = target->probe.OnReady(fds[i].revents, ready_at)) {
      done_.push_back({target->id, std::move(*result)});
    }
  }
}

bool UpstreamProber::Deliver() {
  for (Done& done : done_) {
    // A RemoveTarget made by an earlier callback (or another thread) takes
    // effect before the next callback.
    if (!ApplyCommands()) {
      done_.clear();
      return false;
    }
    auto it = targets_.find(done.result.address);
    if (it == targets_.end() || it->second->id != done.id) continue;
    callback_(done.result);
  }
  done_.clear();
  return true;
}

UpstreamProber::Clock::duration UpstreamProber::Jittered(double low, double high) {
  const double factor = std::uniform_real_distribution<double>(low, high)(rng_);
  return absl::ToChronoNanoseconds(interval_ * factor);
}

void UpstreamProber::Wake() {
  const uint64_t one = 1;
  while (write(wake_fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

}  // namespace gateway
