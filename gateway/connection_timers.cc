#include "gateway/connection_timers.h"

#include <algorithm>

#include "gateway/connection.h"

namespace gateway {
namespace {

int64_t ToNs(absl::Duration d) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) return 0;
  return absl::ToInt64Nanoseconds(d);
}

}  // namespace

ConnectionTimers::ConnectionTimers(const ReactorOptions& options)
    : idle_timeout_ns_(ToNs(options.idle_timeout)),
      linger_ns_(absl::ToInt64Nanoseconds(options.linger)),
      frame_timeout_ns_(ToNs(options.frame_timeout)),
      // Deadlines are checked in list order, which may be off by this much.
      idle_granularity_ns_(std::clamp<int64_t>(idle_timeout_ns_ / 64, 1'000'000, 250'000'000)) {}

void ConnectionTimers::Opened(Connection* connection, int64_t now_ns) {
  if (idle_timeout_ns_ == 0) return;
  Links& links = connection->timer_links_;
  links.pos = idle_list_.insert(idle_list_.end(), connection);
  links.linked_ns = now_ns;
  links.list = Links::List::kIdle;
}

void ConnectionTimers::Touched(Connection* connection, int64_t now_ns) {
  Links& links = connection->timer_links_;
  if (links.list != Links::List::kIdle || now_ns - links.linked_ns < idle_granularity_ns_) return;
  idle_list_.splice(idle_list_.end(), idle_list_, links.pos);
  links.linked_ns = now_ns;
}

void ConnectionTimers::StartLinger(Connection* connection, int64_t now_ns) {
  Links& links = connection->timer_links_;
  if (links.list == Links::List::kIdle) idle_list_.erase(links.pos);
  // Lingering always ends: a peer that never sends its FIN is closed at the
  // linger deadline even with idle timeouts off.
  links.pos = linger_list_.insert(linger_list_.end(), connection);
  links.linked_ns = now_ns;
  links.list = Links::List::kLinger;
}

void ConnectionTimers::FrameStarted(Connection* connection, int64_t now_ns) {
  if (frame_timeout_ns_ == 0) return;
  Links& links = connection->timer_links_;
  if (links.in_frame_list) {
    frame_list_.splice(frame_list_.end(), frame_list_, links.frame_pos);
  } else {
    links.frame_pos = frame_list_.insert(frame_list_.end(), connection);
    links.in_frame_list = true;
  }
  links.frame_started_ns = now_ns;
}

void ConnectionTimers::FrameDone(Connection* connection) {
  Links& links = connection->timer_links_;
  if (!links.in_frame_list) return;
  frame_list_.erase(links.frame_pos);
  links.in_frame_list = false;
}

void ConnectionTimers::Forget(Connection* connection) {
  Links& links = connection->timer_links_;
  if (links.list == Links::List::kIdle) idle_list_.erase(links.pos);
  if (links.list == Links::List::kLinger) linger_list_.erase(links.pos);
  links.list = Links::List::kNone;
  FrameDone(connection);
}

int64_t ConnectionTimers::NextDeadlineNs() const {
  int64_t deadline = INT64_MAX;
  if (!idle_list_.empty()) deadline = idle_list_.front()->last_active_ns() + idle_timeout_ns_;
  if (!linger_list_.empty()) {
    deadline = std::min(deadline, linger_list_.front()->timer_links_.linked_ns + linger_ns_);
  }
  if (!frame_list_.empty()) {
    deadline = std::min(deadline, frame_list_.front()->timer_links_.frame_started_ns + frame_timeout_ns_);
  }
  return deadline;
}

void ConnectionTimers::Expire(int64_t now_ns) {
  // Each close below takes the connection off its list (Forget).
  while (!idle_list_.empty() && idle_list_.front()->last_active_ns() + idle_timeout_ns_ <= now_ns) {
    idle_list_.front()->Close(CloseReason::kIdleTimeout);
  }
  while (!linger_list_.empty() && linger_list_.front()->timer_links_.linked_ns + linger_ns_ <= now_ns) {
    linger_list_.front()->LingerExpired();
  }
  while (!frame_list_.empty() && frame_list_.front()->timer_links_.frame_started_ns + frame_timeout_ns_ <= now_ns) {
    Connection* connection = frame_list_.front();
    FrameDone(connection);
    // Responses already produced are still delivered, as after a bad header.
    connection->RequestClose(CloseReason::kFrameTimeout, CloseMode::kFlush);
  }
}

}  // namespace gateway
