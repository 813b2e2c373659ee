#include "gateway/reactor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace gateway {

int64_t MonotonicNowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

int64_t ToNs(absl::Duration d) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) return 0;
  return absl::ToInt64Nanoseconds(d);
}

}  // namespace

Reactor::Reactor(int index, int listen_fd, const ReactorOptions& options, SharedCounters* shared,
                 std::unique_ptr<FrameHandler> handler)
    : index_(index),
      options_(options),
      shared_(shared),
      handler_(std::move(handler)),
      loop_(options.trigger_mode),
      pool_(&shared->queued_bytes, &stats_.queued_bytes),
      scratch_(nullptr),
      listener_(std::make_unique<Listener>(this, listen_fd)),
      idle_timeout_ns_(ToNs(options.idle_timeout)),
      linger_ns_(absl::ToInt64Nanoseconds(options.linger)),
      frame_timeout_ns_(ToNs(options.frame_timeout)) {
  // Deadlines are checked in list order, which may be off by this much: a
  // connection is relinked at most once per granule, not on every read.
  idle_granularity_ns_ = std::clamp<int64_t>(idle_timeout_ns_ / 64, 1'000'000, 250'000'000);
  size_t capacity = 0;
  scratch_ = pool_.Acquire(kScratchSize, &capacity);
  pool_.Exempt(kScratchSize);  // the reactor's own block: not held by a connection
}

Reactor::~Reactor() {
  Join();
  connections_.clear();
  closed_.clear();
  pool_.Exempt(-static_cast<int64_t>(kScratchSize));
  pool_.Release(scratch_, kScratchSize);
}

char* Reactor::TakeScratch() {
  // The taken block becomes a connection's (counted from now on, by the
  // Acquire below); the new scratch block is the reactor's own.
  char* taken = scratch_;
  size_t capacity = 0;
  scratch_ = pool_.Acquire(kScratchSize, &capacity);
  return taken;
}

void Reactor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Reactor::Join() {
  if (thread_.joinable()) thread_.join();
}

void Reactor::Run() {
  loop_.BindToCurrentThread();
  now_ns_ = MonotonicNowNs();
  if (absl::Status status = listener_->Register(); !status.ok()) {
    std::fprintf(stderr, "gateway: reactor %d: %s\n", index_, std::string(status.message()).c_str());
    std::abort();
  }
  running_ = true;
  while (running_) {
    const int n = loop_.Wait(NextTimeoutMs());
    now_ns_ = MonotonicNowNs();
    stats_.wakeups.Add();
    if (n > 0) stats_.epoll_events.Observe(n);
    loop_.Dispatch();
    ServiceOwed();
    ExpireTimers();
    if (!closed_.empty()) {
      closed_.clear();
      // Fds were just freed: take the spare back before an accept can.
      if (listener_) listener_->RefillSpare();
    }
    if (shutting_down_ && connections_.empty()) running_ = false;
  }
  loop_.Close();
  closed_.clear();
}

// How often connections waiting for the global buffer budget look again.
constexpr int64_t kBudgetPollNs = 10'000'000;
// How long accepting pauses when the process is out of fds.
constexpr int64_t kAcceptBackoffNs = 100'000'000;

int Reactor::NextTimeoutMs() const {
  if (!owed_.empty() || accept_owed_) return 0;
  int64_t deadline = INT64_MAX;
  if (!idle_list_.empty()) deadline = idle_list_.front()->last_active_ns() + idle_timeout_ns_;
  if (!linger_list_.empty()) {
    deadline = std::min(deadline, linger_list_.front()->timer_pos_ns + linger_ns_);
  }
  if (!frame_list_.empty()) {
    deadline = std::min(deadline, frame_list_.front()->frame_started_ns + frame_timeout_ns_);
  }
  if (!budget_waiters_.empty()) deadline = std::min(deadline, now_ns_ + kBudgetPollNs);
  if (accept_resume_ns_ != 0) deadline = std::min(deadline, accept_resume_ns_);
  if (shutting_down_) deadline = std::min(deadline, shutdown_deadline_ns_);
  if (deadline == INT64_MAX) return -1;
  const int64_t wait_ns = deadline - MonotonicNowNs();
  if (wait_ns <= 0) return 0;
  return static_cast<int>(std::min<int64_t>((wait_ns + 999'999) / 1'000'000, 60'000));
}

void Reactor::ServiceOwed() {
  if (accept_owed_) {
    accept_owed_ = false;
    if (listener_) listener_->AcceptSome();
  }
  owed_running_.swap(owed_);
  for (Connection* connection : owed_running_) {
    connection->owed = false;
    connection->Service();
  }
  owed_running_.clear();
}

void Reactor::ExpireTimers() {
  while (!idle_list_.empty() && idle_list_.front()->last_active_ns() + idle_timeout_ns_ <= now_ns_) {
    idle_list_.front()->Close(CloseReason::kIdleTimeout);
  }
  while (!linger_list_.empty() && linger_list_.front()->timer_pos_ns + linger_ns_ <= now_ns_) {
    linger_list_.front()->LingerExpired();
  }
  while (!frame_list_.empty() && frame_list_.front()->frame_started_ns + frame_timeout_ns_ <= now_ns_) {
    Connection* connection = frame_list_.front();
    FrameDone(connection);
    // Responses already produced are still delivered, as after a bad header.
    connection->RequestClose(CloseReason::kFrameTimeout, /*force=*/false);
  }
  if (accept_resume_ns_ != 0 && accept_resume_ns_ <= now_ns_) {
    accept_resume_ns_ = 0;
    if (listener_) {
      if (!listener_->Reregister().ok()) std::fprintf(stderr, "gateway: reactor %d: cannot re-arm listener\n", index_);
      accept_owed_ = true;  // an edge raised while paused was not reported
    }
  }
  if (!budget_waiters_.empty()) ResumeBudgetWaiters();
  if (shutting_down_ && now_ns_ >= shutdown_deadline_ns_ && !connections_.empty()) {
    for (Connection* connection : AllConnections()) connection->Close(CloseReason::kShutdown);
  }
}

void Reactor::Owe(Connection* connection) {
  if (connection->owed) return;
  connection->owed = true;
  owed_.push_back(connection);
}

void Reactor::Touched(Connection* connection) {
  if (!connection->in_idle_list || now_ns_ - connection->timer_pos_ns < idle_granularity_ns_) return;
  idle_list_.splice(idle_list_.end(), idle_list_, connection->timer_pos);
  connection->timer_pos_ns = now_ns_;
}

void Reactor::FrameStarted(Connection* connection) {
  if (frame_timeout_ns_ == 0) return;
  // Every frame has the same timeout, so appending keeps the list in deadline order.
  if (connection->in_frame_list) {
    frame_list_.splice(frame_list_.end(), frame_list_, connection->frame_pos);
  } else {
    connection->frame_pos = frame_list_.insert(frame_list_.end(), connection);
    connection->in_frame_list = true;
  }
  connection->frame_started_ns = now_ns_;
}

void Reactor::FrameDone(Connection* connection) {
  if (!connection->in_frame_list) return;
  frame_list_.erase(connection->frame_pos);
  connection->in_frame_list = false;
}

bool Reactor::OverBudget() {
  const int64_t queued = shared_->queued_bytes.load(std::memory_order_relaxed);
  if (over_budget_) {
    over_budget_ = queued > options_.max_queued_bytes - options_.max_queued_bytes / 8;
  } else {
    over_budget_ = queued > options_.max_queued_bytes;
  }
  return over_budget_;
}

void Reactor::WaitForBudget(Connection* connection) {
  if (connection->waiting_for_budget) return;
  connection->waiting_for_budget = true;
  budget_waiters_.push_back(connection);
}

void Reactor::ResumeBudgetWaiters() {
  if (OverBudget()) return;
  std::vector<Connection*> waiters;
  waiters.swap(budget_waiters_);
  for (Connection* connection : waiters) {
    connection->waiting_for_budget = false;
    Owe(connection);
  }
}

// How long admission stays capped after the last accept that ran out of fds.
constexpr int64_t kFdCeilingNs = 1'000'000'000;

void Reactor::OutOfFds() {
  shared_->fd_ceiling.store(shared_->active.load(std::memory_order_relaxed), std::memory_order_relaxed);
  shared_->fd_ceiling_until_ns.store(now_ns_ + kFdCeilingNs, std::memory_order_relaxed);
}

void Reactor::PauseAccepting() {
  if (accept_resume_ns_ != 0 || !listener_) return;
  stats_.accept_backoffs.Add();
  accept_owed_ = false;
  // Interest 0 keeps the registration but reports nothing: a listener with
  // a full backlog would otherwise wake a level-triggered loop at once.
  if (!poller().Modify(listener_->fd(), listener_.get(), 0).ok()) {
    std::fprintf(stderr, "gateway: reactor %d: cannot pause the listener\n", index_);
  }
  accept_resume_ns_ = now_ns_ + kAcceptBackoffNs;
}

void Reactor::StartLinger(Connection* connection) {
  if (connection->in_idle_list) {
    idle_list_.erase(connection->timer_pos);
    connection->in_idle_list = false;
  }
  connection->timer_pos = linger_list_.insert(linger_list_.end(), connection);
  connection->timer_pos_ns = now_ns_;
  connection->in_linger_list = true;
}

std::vector<Connection*> Reactor::AllConnections() const {
  std::vector<Connection*> all;
  all.reserve(connections_.size());
  for (const auto& [fd, connection] : connections_) all.push_back(connection.get());
  return all;
}

void Reactor::Unlink(Connection* connection) {
  if (connection->in_idle_list) idle_list_.erase(connection->timer_pos);
  if (connection->in_linger_list) linger_list_.erase(connection->timer_pos);
  connection->in_idle_list = connection->in_linger_list = false;
  FrameDone(connection);
  if (connection->owed) {
    owed_.erase(std::find(owed_.begin(), owed_.end(), connection));
    connection->owed = false;
  }
  if (connection->waiting_for_budget) {
    budget_waiters_.erase(std::find(budget_waiters_.begin(), budget_waiters_.end(), connection));
    connection->waiting_for_budget = false;
  }
}

void Reactor::OnAccepted(int fd, const SocketAddress& peer) {
  stats_.accepted.Add();
  const int64_t active = shared_->active.fetch_add(1, std::memory_order_relaxed);
  const bool out_of_fds = now_ns_ < shared_->fd_ceiling_until_ns.load(std::memory_order_relaxed) &&
                          active >= shared_->fd_ceiling.load(std::memory_order_relaxed);
  if (shutting_down_ || (options_.max_connections > 0 && active >= options_.max_connections) || out_of_fds) {
    shared_->active.fetch_sub(1, std::memory_order_relaxed);
    stats_.rejected.Add();
    stats_.closed[static_cast<int>(shutting_down_ ? CloseReason::kShutdown : CloseReason::kMaxConnections)].Add();
    close(fd);  // after counting, so a client that sees the EOF sees the counters too
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // responses are small and latency-bound
  const uint64_t id = shared_->next_id.fetch_add(1, std::memory_order_relaxed);
  auto owned = std::make_unique<Connection>(this, fd, id, peer, now_ns_);
  Connection* connection = owned.get();
  connections_.emplace(fd, std::move(owned));
  stats_.active.Add(1);
  stats_.by_state[static_cast<int>(ConnectionState::kAccept)].Add(1);
  if (idle_timeout_ns_ > 0) {
    connection->timer_pos = idle_list_.insert(idle_list_.end(), connection);
    connection->timer_pos_ns = now_ns_;
    connection->in_idle_list = true;
  }
  if (!observers_.empty()) Publish(EventFor(*connection, ConnectionEvent::Type::kOpened));
  if (!connection->Start().ok()) connection->Close(CloseReason::kError);
}

void Reactor::OnStateChanged(Connection* connection, ConnectionState old_state) {
  stats_.by_state[static_cast<int>(old_state)].Add(-1);
  stats_.by_state[static_cast<int>(connection->state())].Add(1);
  if (state_observers_ == 0) return;
  ConnectionEvent event = EventFor(*connection, ConnectionEvent::Type::kStateChanged);
  event.old_state = old_state;
  Publish(event);
}

void Reactor::OnClosed(Connection* connection, CloseReason reason) {
  Unlink(connection);
  stats_.closed[static_cast<int>(reason)].Add();
  stats_.active.Add(-1);
  stats_.by_state[static_cast<int>(connection->state())].Add(-1);
  shared_->active.fetch_sub(1, std::memory_order_relaxed);
  if (!observers_.empty()) {
    ConnectionEvent event = EventFor(*connection, ConnectionEvent::Type::kClosed);
    event.reason = reason;
    Publish(event);
  }
  // The fd stays open (and so cannot be reused by accept) until the object is
  // destroyed at the end of this wakeup.
  auto it = connections_.find(connection->fd());
  closed_.push_back(std::move(it->second));
  connections_.erase(it);
}

void Reactor::Publish(const ConnectionEvent& event) {
  for (const auto& observer : observers_) {
    if (event.type == ConnectionEvent::Type::kStateChanged && !observer->WantsStateChanges()) continue;
    observer->OnEvent(event);
  }
}

ConnectionEvent Reactor::EventFor(const Connection& connection, ConnectionEvent::Type type) const {
  ConnectionEvent event;
  event.type = type;
  event.time = absl::Now();
  event.connection = connection.Snapshot(event.time, MonotonicNowNs());
  return event;
}

void Reactor::SetTriggerMode(TriggerMode mode) {
  if (loop_.poller().mode() == mode) return;
  loop_.poller().set_mode(mode);
  if (listener_) {
    if (!listener_->Reregister().ok()) std::fprintf(stderr, "gateway: reactor %d: cannot re-arm listener\n", index_);
    accept_owed_ = true;  // connections already queued raise no new edge
  }
  for (Connection* connection : AllConnections()) connection->OnTriggerModeChanged();
}

// A listing in progress: where the next slice starts and what is gathered.
struct Reactor::ListJob {
  ListQuery query;
  int cursor;  // the last fd looked at
  size_t total = 0;
  std::vector<ConnectionInfo> page;
  ListDone done;
};

// Per loop turn: snapshots taken (each formats an address and converts
// times: about a microsecond) and entries looked at with a state filter.
constexpr int kListSnapshotsPerTurn = 256;
constexpr int kListScanPerTurn = 4096;

void Reactor::ListConnections(const ListQuery& query, ListDone done) {
  auto job = std::make_shared<ListJob>();
  job->query = query;
  job->cursor = query.after_fd;
  // The per-state gauges count exactly this table's connections.
  job->total = query.state.has_value() ? static_cast<size_t>(stats_.by_state[static_cast<int>(*query.state)].Get())
                                       : connections_.size();
  job->done = std::move(done);
  ContinueList(std::move(job));
}

void Reactor::ContinueList(std::shared_ptr<ListJob> job) {
  const ListQuery& query = job->query;
  const absl::Time wall_now = absl::Now();
  const int64_t mono_now = MonotonicNowNs();
  auto full = [&] { return query.limit > 0 && job->page.size() >= query.limit; };
  int snapshots = 0;
  int scanned = 0;
  auto it = connections_.upper_bound(job->cursor);
  for (; it != connections_.end() && !full() && snapshots < kListSnapshotsPerTurn && scanned < kListScanPerTurn;
       ++it) {
    ++scanned;
    job->cursor = it->first;
    if (query.state.has_value() && it->second->state() != *query.state) continue;
    job->page.push_back(it->second->Snapshot(wall_now, mono_now));
    ++snapshots;
  }
  if (it == connections_.end() || full()) {
    std::move(job->done)(std::move(job->page), job->total);
    return;
  }
  // Let I/O run, then go on from the cursor (connections opened or closed
  // meanwhile are seen or not by where their fd falls).
  if (!Post([this, job] { ContinueList(job); })) {
    std::move(job->done)(std::move(job->page), job->total);  // the loop is closing: what we have
  }
}

Connection* Reactor::FindConnection(int fd, uint64_t id) {
  auto it = connections_.find(fd);
  if (it == connections_.end() || (id != 0 && it->second->id() != id)) return nullptr;
  return it->second.get();
}

std::optional<ConnectionInfo> Reactor::GetConnection(int fd, uint64_t id) {
  const Connection* connection = FindConnection(fd, id);
  if (connection == nullptr) return std::nullopt;
  return connection->Snapshot(absl::Now(), MonotonicNowNs());
}

bool Reactor::CloseConnection(int fd, uint64_t id, bool force) {
  Connection* connection = FindConnection(fd, id);
  if (connection == nullptr) return false;
  connection->RequestClose(CloseReason::kControlPlane, force);
  return true;
}

void Reactor::AddObserver(std::shared_ptr<ConnectionObserver> observer) {
  if (observer->WantsStateChanges()) ++state_observers_;
  observers_.push_back(std::move(observer));
}

void Reactor::RemoveObserver(const ConnectionObserver* observer) {
  auto it = std::find_if(observers_.begin(), observers_.end(),
                         [observer](const auto& o) { return o.get() == observer; });
  if (it == observers_.end()) return;
  if ((*it)->WantsStateChanges()) --state_observers_;
  observers_.erase(it);
}

void Reactor::BeginShutdown(absl::Time deadline) {
  if (shutting_down_) return;
  shutting_down_ = true;
  shutdown_deadline_ns_ = now_ns_ + absl::ToInt64Nanoseconds(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  listener_.reset();  // closing the fd removes it from epoll
  accept_owed_ = false;
  for (Connection* connection : AllConnections()) connection->BeginDrain();
}

}  // namespace gateway
