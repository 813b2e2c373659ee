#include "gateway/reactor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "gateway/log.h"
#include "gateway/thread_check.h"

namespace gateway {
namespace {

// How often connections waiting for the global buffer budget look again.
constexpr int64_t kBudgetPollNs = 10'000'000;
// How long accepting pauses when the process is out of fds.
constexpr int64_t kAcceptBackoffNs = 100'000'000;
// How long admission stays capped after the last accept that ran out of fds.
constexpr int64_t kFdCeilingNs = 1'000'000'000;
// The longest single wait: a bound on what a clock jump or a lost wakeup
// could cost, not a tuning value (every deadline is computed exactly).
constexpr int64_t kMaxWaitMs = 60'000;

}  // namespace

Reactor::Reactor(int index, int listen_fd, const ReactorOptions& options, SharedCounters* shared,
                 std::unique_ptr<FrameHandler> handler, const UpstreamOptions& upstream,
                 UpstreamPool::EjectCallback on_eject)
    : index_(index),
      options_(options),
      trigger_mode_(options.trigger_mode),
      shared_(shared),
      handler_(std::move(handler)),
      pool_(&shared->queued_bytes, &stats_.queued_bytes),
      scratch_(&pool_),
      timers_(options_),
      events_(&stats_),
      upstream_(upstream.enabled()
                    ? std::make_unique<UpstreamPool>(upstream, index, &loop_, &stats_,
                                                     static_cast<ConnectionHost*>(this), std::move(on_eject))
                    : nullptr),
      context_{&options_, &stats_,  &pool_, &scratch_, &loop_,         handler_.get(),
               &timers_,  &events_, this,   index,     upstream_.get()},
      listener_(std::make_unique<Listener>(&loop_, static_cast<ListenerHost*>(this), &stats_, options.accept_budget,
                                           listen_fd)),
      jitter_rng_(std::random_device{}() + static_cast<unsigned>(index)) {}

Reactor::~Reactor() {
  Join();
  connections_.clear();
  closed_.clear();
}

void Reactor::Start() {
  thread_ = std::thread([this] { Run(); });
}

void Reactor::Join() {
  if (thread_.joinable()) thread_.join();
}

void Reactor::Run() {
  loop_.BindToCurrentThread();
  loop_.UpdateTime();
  // The back-end is made here: io_uring ties a ring to the thread that made it.
  absl::StatusOr<std::unique_ptr<Poller>> poller = MakePoller(options_.io_model, trigger_mode_);
  if (poller.ok()) poller = loop_.InstallPoller(*std::move(poller));
  if (!poller.ok()) Die(absl::StrCat("reactor ", index_, ": ", poller.status().message()));
  if (absl::Status status = listener_->Register(); !status.ok()) {
    Die(absl::StrCat("reactor ", index_, ": ", status.message()));
  }
  if (upstream_ != nullptr) {
    if (absl::Status status = upstream_->Start(); !status.ok()) {
      Die(absl::StrCat("reactor ", index_, ": upstream: ", status.message()));
    }
  }
  running_ = true;
  while (running_) {
    const int n = loop_.Wait(NextTimeoutMs());
    stats_.wakeups.Add();
    if (n > 0) stats_.epoll_events.Observe(n);
    loop_.Dispatch();
    RunDeferred();
    // Every request this turn read goes out now: one write per upstream
    // connection, however many clients' frames it carries.
    if (upstream_ != nullptr) upstream_->FlushAll();
    ExpireDeadlines();
    if (!closed_.empty()) {
      closed_.clear();
      // Fds were just freed: take the spare back before an accept can.
      if (listener_) listener_->RefillSpare();
    }
    if (shutting_down_ && connections_.empty()) running_ = false;
  }
  loop_.Close();
  closed_.clear();
  listener_.reset();
  if (upstream_ != nullptr) upstream_->Stop();  // its fds close through the back-end
  loop_.DestroyPoller();
}

int Reactor::NextTimeoutMs() const {
  if (!deferred_.empty() || accept_pending_) return 0;
  int64_t deadline = timers_.NextDeadlineNs();
  if (!budget_waiters_.empty()) deadline = std::min(deadline, loop_.now_ns() + kBudgetPollNs);
  if (accept_resume_ns_ != 0) deadline = std::min(deadline, accept_resume_ns_);
  if (shutting_down_) deadline = std::min(deadline, shutdown_deadline_ns_);
  if (upstream_ != nullptr) deadline = std::min(deadline, upstream_->NextDeadlineNs());
  deadline = std::min(deadline, drains_.NextDueNs());
  if (deadline == INT64_MAX) return -1;
  const int64_t wait_ns = deadline - MonotonicNowNs();
  if (wait_ns <= 0) return 0;
  return static_cast<int>(std::min<int64_t>((wait_ns + 999'999) / 1'000'000, kMaxWaitMs));
}

void Reactor::RunDeferred() {
  if (accept_pending_) {
    accept_pending_ = false;
    if (listener_) listener_->AcceptSome();
  }
  deferred_running_.swap(deferred_);
  for (Connection* connection : deferred_running_) {
    connection->host_links().service_later = false;
    connection->Service();
  }
  deferred_running_.clear();
}

void Reactor::ExpireDeadlines() {
  const int64_t now = loop_.now_ns();
  timers_.Expire(now);
  if (upstream_ != nullptr) upstream_->Expire(now);
  if (accept_resume_ns_ != 0 && accept_resume_ns_ <= now) ResumeAccepting();
  if (!budget_waiters_.empty()) ResumeBudgetWaiters();
  if (drains_.NextDueNs() <= now) {
    for (const DrainSchedule::Entry& due : drains_.TakeDue(now)) {
      if (Connection* connection = FindConnection(due.fd, due.id)) connection->BeginDrain(due.reason);
    }
  }
  if (shutting_down_ && now >= shutdown_deadline_ns_ && !connections_.empty()) {
    for (Connection* connection : AllConnections()) connection->Close(CloseReason::kShutdown);
  }
}

void Reactor::ServiceLater(Connection* connection) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  Connection::HostLinks& links = connection->host_links();
  if (links.service_later) return;
  links.service_later = true;
  deferred_.push_back(connection);
}

bool Reactor::OverBudget() {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  const int64_t queued = shared_->queued_bytes.load(std::memory_order_relaxed);
  if (over_budget_) {
    over_budget_ = queued > options_.max_queued_bytes - options_.max_queued_bytes / 8;
  } else {
    over_budget_ = queued > options_.max_queued_bytes;
  }
  return over_budget_;
}

void Reactor::WaitForBudget(Connection* connection) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  Connection::HostLinks& links = connection->host_links();
  if (links.waiting_for_budget) return;
  links.waiting_for_budget = true;
  budget_waiters_.push_back(connection);
}

void Reactor::ResumeBudgetWaiters() {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  if (OverBudget()) return;
  std::vector<Connection*> waiters;
  waiters.swap(budget_waiters_);
  for (Connection* connection : waiters) {
    connection->host_links().waiting_for_budget = false;
    ServiceLater(connection);
  }
}

void Reactor::OutOfFds() {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  shared_->fd_ceiling.store(shared_->active.load(std::memory_order_relaxed), std::memory_order_relaxed);
  shared_->fd_ceiling_until_ns.store(loop_.now_ns() + kFdCeilingNs, std::memory_order_relaxed);
}

void Reactor::PauseAccepting() {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  if (accept_resume_ns_ != 0 || !listener_) return;
  stats_.accept_backoffs.Add();
  accept_pending_ = false;
  if (!listener_->Mute().ok()) LogError(absl::StrCat("reactor ", index_, ": cannot pause the listener"));
  accept_resume_ns_ = loop_.now_ns() + kAcceptBackoffNs;
}

void Reactor::ResumeAccepting() {
  accept_resume_ns_ = 0;
  RearmListener();
}

void Reactor::RearmListener(bool new_poller) {
  if (!listener_) return;
  if (!(new_poller ? listener_->Register() : listener_->Reregister()).ok()) {
    // A listener this reactor cannot watch would hold the clients the kernel
    // routes to it unanswered: close it, so SO_REUSEPORT sends them to the
    // other reactors' listeners.
    LogError(absl::StrCat("reactor ", index_, ": cannot re-arm the listener; this reactor stops accepting"));
    listener_.reset();
    accept_pending_ = false;
    return;
  }
  accept_pending_ = true;  // connections already queued raise no new edge
}

std::vector<Connection*> Reactor::AllConnections() const {
  std::vector<Connection*> all;
  all.reserve(connections_.size());
  for (const auto& [fd, connection] : connections_) all.push_back(connection.get());
  return all;
}

void Reactor::Accepted(int fd, const SocketAddress& peer) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  stats_.accepted.Add();
  const int64_t active = shared_->active.fetch_add(1, std::memory_order_relaxed);
  const bool out_of_fds = loop_.now_ns() < shared_->fd_ceiling_until_ns.load(std::memory_order_relaxed) &&
                          active >= shared_->fd_ceiling.load(std::memory_order_relaxed);
  if (shutting_down_ || (options_.max_connections > 0 && active >= options_.max_connections) || out_of_fds) {
    shared_->active.fetch_sub(1, std::memory_order_relaxed);
    stats_.rejected.Add();
    stats_.closed[static_cast<int>(shutting_down_ ? CloseReason::kShutdown : CloseReason::kMaxConnections)].Add();
    close(fd);  // after counting, so a client that sees the EOF sees the counters too
    return;
  }
  if (fd >= FD_SETSIZE && loop_.poller().model() == IoModel::kSelect) {
    // select(2) cannot watch it: FD_SET would write past the fd_set.
    shared_->active.fetch_sub(1, std::memory_order_relaxed);
    stats_.rejected.Add();
    stats_.closed[static_cast<int>(CloseReason::kSelectFdLimit)].Add();
    close(fd);
    return;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // responses are small and latency-bound
  const uint64_t id = shared_->next_id.fetch_add(1, std::memory_order_relaxed);
  auto owned = std::make_unique<Connection>(&context_, fd, id, peer);
  Connection* connection = owned.get();
  connections_.emplace(fd, std::move(owned));
  stats_.active.Add(1);
  timers_.Opened(connection, loop_.now_ns());
  if (options_.max_connection_age > absl::ZeroDuration()) {
    const double jitter = options_.max_connection_age_jitter;
    const double factor = 1 + std::uniform_real_distribution<double>(-jitter, jitter)(jitter_rng_);
    const auto age_ns = static_cast<int64_t>(absl::ToDoubleNanoseconds(options_.max_connection_age) * factor);
    drains_.Add({loop_.now_ns() + age_ns, fd, id, CloseReason::kMaxConnectionAge});
  }
  events_.Opened(*connection);
  if (!connection->Start().ok()) connection->Close(CloseReason::kError);
}

void Reactor::Closed(Connection* connection, CloseReason reason) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  timers_.Forget(connection);
  Connection::HostLinks& links = connection->host_links();
  if (links.service_later) {
    deferred_.erase(std::find(deferred_.begin(), deferred_.end(), connection));
    links.service_later = false;
  }
  if (links.waiting_for_budget) {
    budget_waiters_.erase(std::find(budget_waiters_.begin(), budget_waiters_.end(), connection));
    links.waiting_for_budget = false;
  }
  stats_.closed[static_cast<int>(reason)].Add();
  stats_.active.Add(-1);
  shared_->active.fetch_sub(1, std::memory_order_relaxed);
  events_.Closed(*connection, reason);
  // The fd stays open (and so cannot be reused by accept) until the object is
  // destroyed at the end of this wakeup.
  auto it = connections_.find(connection->fd());
  closed_.push_back(std::move(it->second));
  connections_.erase(it);
}

void Reactor::SetTriggerMode(TriggerMode mode) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  trigger_mode_ = mode;
  if (loop_.poller().model() != IoModel::kEpoll || loop_.poller().mode() == mode) return;
  loop_.poller().set_mode(mode);
  RearmListener();
  for (Connection* connection : AllConnections()) connection->OnTriggerModeChanged();
  if (upstream_ != nullptr) upstream_->OnTriggerModeChanged();
}

int Reactor::CountFdsOverSelectLimit() const {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  // The table is ordered by fd: count from the first one over the limit.
  return static_cast<int>(std::distance(connections_.lower_bound(FD_SETSIZE), connections_.end()));
}

absl::Status Reactor::SetIoModel(IoModel model) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  if (loop_.poller().model() == model) return absl::OkStatus();
  if (model == IoModel::kSelect) {
    if (const int over = CountFdsOverSelectLimit(); over > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("reactor ", index_, " holds ", over, " connection(s) on fds >= FD_SETSIZE (1024)"));
    }
  }
  absl::StatusOr<std::unique_ptr<Poller>> next = MakePoller(model, trigger_mode_);
  if (!next.ok()) return next.status();
  absl::StatusOr<std::unique_ptr<Poller>> installed = loop_.InstallPoller(*std::move(next));
  if (!installed.ok()) return installed.status();
  std::unique_ptr<Poller> retired = *std::move(installed);
  retired->Quiesce();
  std::vector<int> accepted;
  if (listener_) {
    accepted = retired->Release(listener_->fd()).accepted;
    RearmListener(/*new_poller=*/true);  // or closes the listener
    if (listener_ && accept_resume_ns_ != 0 && !listener_->Mute().ok()) {
      LogError(absl::StrCat("reactor ", index_, ": cannot pause the listener"));
    }
  }
  for (Connection* connection : AllConnections()) {
    connection->MoveToNewPoller(retired->Release(connection->fd()));
  }
  if (upstream_ != nullptr) upstream_->MoveToNewPoller(*retired);
  // Connections the retired back-end accepted and nobody admitted yet, in order.
  for (int fd : accepted) {
    SocketAddress peer{};
    socklen_t len = sizeof peer;
    if (getpeername(fd, &peer.sa, &len) != 0) peer = SocketAddress{};
    Accepted(fd, peer);
  }
  // Closed connections still waiting for destruction close their fds through
  // the new back-end, which never saw them: a plain close.
  return absl::OkStatus();
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
  GATEWAY_ASSERT_IN_LOOP(loop_);
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
  GATEWAY_ASSERT_IN_LOOP(loop_);
  const ListQuery& query = job->query;
  const absl::Time wall_now = absl::Now();
  const int64_t mono_now = MonotonicNowNs();
  auto full = [&] { return query.limit > 0 && job->page.size() >= query.limit; };
  int snapshots = 0;
  int scanned = 0;
  auto it = connections_.upper_bound(job->cursor);
  for (; it != connections_.end() && !full() && snapshots < kListSnapshotsPerTurn && scanned < kListScanPerTurn; ++it) {
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
  GATEWAY_ASSERT_IN_LOOP(loop_);
  const Connection* connection = FindConnection(fd, id);
  if (connection == nullptr) return std::nullopt;
  return connection->Snapshot(absl::Now(), MonotonicNowNs());
}

bool Reactor::CloseConnection(int fd, uint64_t id, CloseMode mode) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  Connection* connection = FindConnection(fd, id);
  if (connection == nullptr) return false;
  connection->RequestClose(CloseReason::kControlPlane, mode);
  return true;
}

void Reactor::AddObserver(std::shared_ptr<ConnectionObserver> observer) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  events_.AddObserver(std::move(observer));
}

void Reactor::RemoveObserver(const ConnectionObserver* observer) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  events_.RemoveObserver(observer);
}

void Reactor::BeginShutdown(absl::Time deadline, absl::Duration spread) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  if (shutting_down_) return;
  // Connections the kernel has completed but we have not accepted would get
  // a reset when the listening socket closes: take them (bounded), and drain
  // them with the rest.
  for (int round = 0; round < 64 && listener_; ++round) {
    const uint64_t before = stats_.accepted.Get();
    listener_->AcceptSome();
    if (stats_.accepted.Get() == before) break;
  }
  shutting_down_ = true;
  const int64_t now = loop_.now_ns();
  shutdown_deadline_ns_ = now + absl::ToInt64Nanoseconds(std::max(deadline - absl::Now(), absl::ZeroDuration()));
  listener_.reset();  // closing the fd removes it from epoll
  accept_pending_ = false;
  const int64_t spread_ns = absl::ToInt64Nanoseconds(std::max(spread, absl::ZeroDuration()));
  if (spread_ns == 0) {
    for (Connection* connection : AllConnections()) connection->BeginDrain(CloseReason::kShutdown);
    return;
  }
  // Spread evenly at random, as HAProxy's close-spread-time does: the
  // clients reconnecting elsewhere arrive as a trickle, not a storm.
  std::uniform_int_distribution<int64_t> offset(0, spread_ns);
  for (const auto& [fd, connection] : connections_) {
    drains_.Add({now + offset(jitter_rng_), fd, connection->id(), CloseReason::kShutdown});
  }
}

std::vector<Reactor::DrainCandidate> Reactor::DrainCandidates(int64_t opened_before_ns) const {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  std::vector<DrainCandidate> candidates;
  for (const auto& [fd, connection] : connections_) {
    if (connection->accepting_frames() && connection->opened_ns() <= opened_before_ns) {
      candidates.push_back({connection->opened_ns(), fd, connection->id()});
    }
  }
  return candidates;
}

void Reactor::ScheduleDrains(const std::vector<DrainSchedule::Entry>& entries) {
  GATEWAY_ASSERT_IN_LOOP(loop_);
  for (const DrainSchedule::Entry& entry : entries) drains_.Add(entry);
}

}  // namespace gateway
