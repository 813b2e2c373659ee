#include "gateway/upstream_pool.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>

#include "absl/strings/str_cat.h"
#include "gateway/connection.h"
#include "gateway/connection_host.h"
#include "gateway/event_loop.h"
#include "gateway/reactor_stats.h"

namespace gateway {
namespace {

// Rounds of end-of-turn flushing: a failure re-dispatches requests onto
// other connections, which are flushed in the next round.
constexpr int kFlushRounds = 4;

uint64_t Mix(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

}  // namespace

uint64_t PoolBackend::work() const {
  uint64_t total = pending.size();
  for (const auto& connection : connections) total += connection->queued();
  return total;
}

UpstreamPool::UpstreamPool(const UpstreamOptions& options, int reactor_index, EventLoop* loop, ReactorStats* stats,
                           ConnectionHost* host, EjectCallback on_eject)
    : options_(options),
      reactor_index_(reactor_index),
      loop_(loop),
      stats_(stats),
      host_(host),
      on_eject_(std::move(on_eject)),
      rng_(static_cast<uint32_t>(reactor_index) * 7919 + 1) {}

UpstreamPool::~UpstreamPool() { Stop(); }

absl::Status UpstreamPool::Start() {
  connect_epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (connect_epoll_fd_ < 0) return absl::InternalError(absl::StrCat("epoll_create1: ", std::strerror(errno)));
  if (absl::Status added = loop_->poller().Add(connect_epoll_fd_, this, Poller::kReadable, FdRole::kNotify);
      !added.ok()) {
    close(connect_epoll_fd_);
    connect_epoll_fd_ = -1;
    return added;
  }
  started_ = true;
  const int64_t now = loop_->now_ns();
  for (auto& backend : backends_) {
    for (auto& connection : backend->connections) connection->Connect(now);
  }
  return absl::OkStatus();
}

void UpstreamPool::Stop() {
  if (!started_) return;
  started_ = false;
  dirty_.clear();
  for (auto& backend : backends_) backend->connections.clear();  // closes through the poller
  backends_.clear();
  room_waiters_.clear();
  if (connect_epoll_fd_ >= 0) loop_->poller().Close(connect_epoll_fd_);
  connect_epoll_fd_ = -1;
}

PoolBackend* UpstreamPool::Find(absl::string_view address) {
  for (auto& backend : backends_) {
    if (backend->address == address) return backend.get();
  }
  return nullptr;
}

void UpstreamPool::Update(const BackendUpdate& update) {
  PoolBackend* backend = Find(update.address);
  if (backend == nullptr) {
    auto added = std::make_unique<PoolBackend>();
    backend = added.get();
    backend->address = update.address;
    backend->stats = update.stats;
    backend->shard = &backend->stats->shards[static_cast<size_t>(reactor_index_)];
    for (int i = 0; i < options_.connections; ++i) {
      backend->connections.push_back(std::make_unique<UpstreamConnection>(this, backend));
    }
    backends_.push_back(std::move(added));
  }
  if (update.version != 0 && update.version < backend->version) return;
  backend->version = update.version;
  const bool became_eligible = update.eligible && !backend->eligible;
  const bool became_ineligible = !update.eligible && backend->eligible;
  backend->resolved = update.resolved;
  backend->weight = update.weight;
  backend->eligible = update.eligible && !backend->removing;
  // Ejected or drained elsewhere: what waits here for it goes to the others.
  if (became_ineligible) RedispatchPending(backend);
  if (became_eligible) backend->consecutive_errors = 0;
  if (started_ && backend->eligible) {
    const int64_t now = loop_->now_ns();
    for (auto& connection : backend->connections) connection->Connect(now);
  }
  if (became_eligible) ResumeWaiters();
}

void UpstreamPool::Remove(const std::string& address) {
  auto it = std::find_if(backends_.begin(), backends_.end(), [&](const auto& b) { return b->address == address; });
  if (it == backends_.end()) return;
  PoolBackend* backend = it->get();
  backend->removing = true;
  backend->eligible = false;
  std::deque<UpstreamRequest> pending;
  pending.swap(backend->pending);
  backend->shard->pending.Add(-static_cast<int64_t>(pending.size()));
  for (auto& connection : backend->connections) {
    if (connection->dirty()) dirty_.erase(std::find(dirty_.begin(), dirty_.end(), connection.get()));
    connection->Shutdown();
  }
  for (UpstreamRequest& request : pending) Redispatch(backend, std::move(request));
  std::vector<PoolBackend::DrainWaiter> waiters;
  waiters.swap(backend->drained_waiters);
  // Shutdown() may have re-dispatched onto dirty lists; this backend's own
  // connections are idle now and cannot be dirty again.
  backends_.erase(std::find_if(backends_.begin(), backends_.end(), [&](const auto& b) { return b.get() == backend; }));
  for (auto& waiter : waiters) std::move(waiter.done)(true);
}

void UpstreamPool::WhenDrained(const std::string& address, int64_t deadline_ns,
                               absl::AnyInvocable<void(bool drained) &&> done) {
  PoolBackend* backend = Find(address);
  if (backend == nullptr || backend->work() == 0) {
    std::move(done)(true);
    return;
  }
  backend->drained_waiters.push_back(PoolBackend::DrainWaiter{deadline_ns, std::move(done)});
}

void UpstreamPool::CheckDrained(PoolBackend* backend) {
  if (backend->drained_waiters.empty() || backend->work() != 0) return;
  std::vector<PoolBackend::DrainWaiter> waiters;
  waiters.swap(backend->drained_waiters);
  for (auto& waiter : waiters) std::move(waiter.done)(true);
}

void UpstreamPool::ExpireDrainWaiters(PoolBackend* backend, int64_t now_ns) {
  auto& waiters = backend->drained_waiters;
  for (size_t i = 0; i < waiters.size();) {
    if (waiters[i].deadline_ns > now_ns) {
      ++i;
      continue;
    }
    auto done = std::move(waiters[i].done);
    waiters.erase(waiters.begin() + static_cast<ptrdiff_t>(i));
    std::move(done)(false);
  }
}

PoolBackend* UpstreamPool::Choose(const ClientLink& link, const PoolBackend* exclude) {
  const size_t max_pending = static_cast<size_t>(options_.max_pending);
  if (options_.lb == LoadBalancing::kHash) {
    // Rendezvous hashing: a client keeps its backend while that backend is
    // eligible, and only the clients of a backend that leaves move.
    PoolBackend* best = nullptr;
    uint64_t best_score = 0;
    for (auto& backend : backends_) {
      if (!backend->eligible || backend.get() == exclude) continue;
      const uint64_t score = Mix(link.hash ^ std::hash<std::string>{}(backend->address));
      if (best == nullptr || score > best_score) {
        best = backend.get();
        best_score = score;
      }
    }
    return best;
  }
  // Backends with room first; all eligible ones if every one is full.
  for (const bool need_room : {true, false}) {
    auto usable = [&](const PoolBackend& b) {
      return b.eligible && &b != exclude && (!need_room || b.pending.size() < max_pending);
    };
    if (options_.lb == LoadBalancing::kLeastInflight) {
      // Power of two choices: two at random, the less loaded per weight.
      std::vector<PoolBackend*> candidates;
      for (auto& backend : backends_) {
        if (usable(*backend)) candidates.push_back(backend.get());
      }
      if (candidates.empty()) continue;
      if (candidates.size() == 1) return candidates[0];
      std::uniform_int_distribution<size_t> pick(0, candidates.size() - 1);
      PoolBackend* a = candidates[pick(rng_)];
      PoolBackend* b = candidates[pick(rng_)];
      if (a == b)
        b = candidates[(std::find(candidates.begin(), candidates.end(), a) - candidates.begin() + 1) %
                       candidates.size()];
      // work/weight compared without division.
      return a->work() * b->weight <= b->work() * a->weight ? a : b;
    }
    // Smooth weighted round robin (nginx's): spreads a heavy backend's turns
    // between the others' instead of sending it bursts.
    PoolBackend* best = nullptr;
    int64_t total = 0;
    for (auto& backend : backends_) {
      if (!usable(*backend)) continue;
      backend->rr_current += backend->weight;
      total += backend->weight;
      if (best == nullptr || backend->rr_current > best->rr_current) best = backend.get();
    }
    if (best == nullptr) continue;
    best->rr_current -= total;
    return best;
  }
  return nullptr;
}

UpstreamConnection* UpstreamPool::ConnectionWithRoom(PoolBackend* backend, const ClientLink& link) {
  auto& connections = backend->connections;
  if (options_.lb == LoadBalancing::kHash) {
    // One connection per client too, so a stateful backend sees its frames in order.
    UpstreamConnection* connection = connections[link.hash % connections.size()].get();
    return connection->has_room() ? connection : nullptr;
  }
  UpstreamConnection* best = nullptr;
  for (auto& connection : connections) {
    if (!connection->has_room()) continue;
    if (best == nullptr || connection->queued() < best->queued()) best = connection.get();
  }
  return best;
}

std::optional<UpstreamError> UpstreamPool::Submit(const std::shared_ptr<ClientLink>& link, uint64_t seq,
                                                  absl::string_view frame, int64_t read_ns) {
  PoolBackend* backend = Choose(*link, nullptr);
  if (backend == nullptr) {
    stats_->upstream_errors[static_cast<int>(UpstreamError::kNoBackend)].Add();
    return UpstreamError::kNoBackend;
  }
  if (UpstreamConnection* connection = ConnectionWithRoom(backend, *link); connection != nullptr) {
    connection->Queue(link, seq, frame, read_ns);
    return std::nullopt;
  }
  if (backend->pending.size() >= 2 * static_cast<size_t>(options_.max_pending)) {
    stats_->upstream_errors[static_cast<int>(UpstreamError::kOverload)].Add();
    return UpstreamError::kOverload;
  }
  backend->pending.push_back(UpstreamRequest{link, seq, read_ns, std::string(frame)});
  backend->shard->pending.Add(1);
  // Idle connections (after a failure) connect again, at the end of this
  // turn: a refusal re-dispatches, and may answer this very client, which
  // must not happen inside its read.
  connect_wanted_ = true;
  return std::nullopt;
}

bool UpstreamPool::FullFor(const std::shared_ptr<ClientLink>& link) {
  const size_t max_pending = static_cast<size_t>(options_.max_pending);
  if (options_.lb == LoadBalancing::kHash) {
    const PoolBackend* backend = Choose(*link, nullptr);
    return backend != nullptr && backend->pending.size() >= max_pending;
  }
  bool any = false;
  for (const auto& backend : backends_) {
    if (!backend->eligible) continue;
    if (backend->pending.size() < max_pending) return false;
    any = true;
  }
  return any;  // none eligible: not full, new frames get the error at once
}

bool UpstreamPool::MustWaitForRoom(const std::shared_ptr<ClientLink>& link) {
  if (FullFor(link)) return true;
  // With hash, full is per backend: a client of another backend waits for nobody.
  if (options_.lb == LoadBalancing::kHash || link->room_granted) return false;
  return grants_pending_ || !room_waiters_.empty();
}

void UpstreamPool::WaitForRoom(const std::shared_ptr<ClientLink>& link) {
  if (link->waiting_for_room) return;
  link->waiting_for_room = true;
  if (link->room_granted) {
    // Its turn came and the room ran out under it: it keeps its place, ahead
    // of the newcomers.
    room_waiters_.insert(room_waiters_.begin() + static_cast<ptrdiff_t>(std::min(requeued_, room_waiters_.size())),
                         link);
    ++requeued_;
    return;
  }
  room_waiters_.push_back(link);
}

void UpstreamPool::ResumeWaiters() {
  if (room_waiters_.empty()) return;
  // Only those with room now: the others would find it full and wait again,
  // and the loop would spin.
  std::vector<std::shared_ptr<ClientLink>> waiters;
  waiters.swap(room_waiters_);
  requeued_ = 0;
  for (auto& link : waiters) {
    if (link->connection == nullptr) {
      link->waiting_for_room = false;
      continue;
    }
    if (FullFor(link)) {
      room_waiters_.push_back(std::move(link));
      continue;
    }
    link->waiting_for_room = false;
    link->room_granted = true;
    grants_pending_ = true;
    host_->ServiceLater(link->connection);
  }
}

void UpstreamPool::Pump(PoolBackend* backend) {
  bool moved = false;
  while (!backend->pending.empty()) {
    UpstreamRequest& request = backend->pending.front();
    if (request.link->connection == nullptr) {  // the client has gone: nobody wants the answer
      backend->pending.pop_front();
      backend->shard->pending.Add(-1);
      continue;
    }
    UpstreamConnection* connection = ConnectionWithRoom(backend, *request.link);
    if (connection == nullptr) break;
    backend->shard->pending.Add(-1);  // Queue() counts it again, on the connection
    connection->Queue(std::move(request.link), request.seq, request.frame, request.submit_ns);
    backend->pending.pop_front();
    moved = true;
  }
  if (moved) ResumeWaiters();
  CheckDrained(backend);
}

void UpstreamPool::MarkDirty(UpstreamConnection* connection) {
  if (connection->dirty()) return;
  connection->dirty() = true;
  dirty_.push_back(connection);
}

void UpstreamPool::FlushAll() {
  // Every client granted room before now has been serviced (RunDeferred).
  grants_pending_ = false;
  if (connect_wanted_) {
    connect_wanted_ = false;
    const int64_t now = loop_->now_ns();
    for (size_t b = 0; b < backends_.size(); ++b) {
      PoolBackend* backend = backends_[b].get();
      if (backend->pending.empty()) continue;
      for (auto& connection : backend->connections) connection->Connect(now);
    }
  }
  for (int round = 0; round < kFlushRounds && !dirty_.empty(); ++round) {
    std::vector<UpstreamConnection*> dirty;
    dirty.swap(dirty_);
    for (UpstreamConnection* connection : dirty) connection->dirty() = false;
    for (UpstreamConnection* connection : dirty) connection->Service();
  }
  ResumeWaiters();
}

void UpstreamPool::Deliver(const std::shared_ptr<ClientLink>& link, uint64_t seq, absl::string_view frame) {
  if (link != nullptr && link->connection != nullptr) link->connection->OnUpstreamReply(seq, frame, /*error=*/false);
}

void UpstreamPool::DeliverError(const std::shared_ptr<ClientLink>& link, uint64_t seq, UpstreamError /*error*/) {
  if (link != nullptr && link->connection != nullptr) link->connection->OnUpstreamReply(seq, kErrorFrame, true);
}

void UpstreamPool::Succeeded(PoolBackend* backend) { backend->consecutive_errors = 0; }

void UpstreamPool::Failed(PoolBackend* backend, UpstreamError error, absl::string_view detail) {
  ++backend->consecutive_errors;
  if (backend->eligible && backend->consecutive_errors >= options_.eject_after) {
    backend->eligible = false;  // here at once; the registry tells the others
    on_eject_(backend->address,
              absl::StrCat(backend->consecutive_errors, " errors in a row on reactor ", reactor_index_,
                           ", the last: ", UpstreamErrorName(error), " (", detail, ")"));
  }
  // Ejected, or no connection of this backend even trying: what waits for
  // it was never written, so it goes elsewhere now rather than time out.
  bool trying = false;
  for (const auto& connection : backend->connections) {
    if (connection->phase() != UpstreamConnection::Phase::kIdle) trying = true;
  }
  if (!backend->eligible || !trying) RedispatchPending(backend);
}

void UpstreamPool::RedispatchPending(PoolBackend* backend) {
  if (backend->pending.empty()) return;
  std::deque<UpstreamRequest> pending;
  pending.swap(backend->pending);
  backend->shard->pending.Add(-static_cast<int64_t>(pending.size()));
  for (UpstreamRequest& request : pending) Redispatch(backend, std::move(request));
}

void UpstreamPool::Redispatch(PoolBackend* from, UpstreamRequest request) {
  if (request.link == nullptr || request.link->connection == nullptr) return;  // nobody wants the answer
  ++request.attempts;
  from->shard->redispatched.Add();
  PoolBackend* backend = request.attempts <= backends_.size() ? Choose(*request.link, from) : nullptr;
  if (backend == nullptr) {
    stats_->upstream_errors[static_cast<int>(UpstreamError::kNoBackend)].Add();
    DeliverError(request.link, request.seq, UpstreamError::kNoBackend);
    CheckDrained(from);
    return;
  }
  if (UpstreamConnection* connection = ConnectionWithRoom(backend, *request.link); connection != nullptr) {
    connection->Queue(std::move(request.link), request.seq, request.frame, request.submit_ns);
  } else {
    backend->pending.push_back(std::move(request));
    backend->shard->pending.Add(1);
  }
  CheckDrained(from);
}

void UpstreamPool::Expire(int64_t now_ns) {
  const int64_t timeout = absl::ToInt64Nanoseconds(options_.timeout);
  // Removal never happens from here, so the list is stable.
  for (size_t b = 0; b < backends_.size(); ++b) {
    PoolBackend* backend = backends_[b].get();
    for (auto& connection : backend->connections) {
      connection->Expire(now_ns);
      if (backend->eligible && connection->phase() == UpstreamConnection::Phase::kIdle) connection->Connect(now_ns);
    }
    while (!backend->pending.empty() && backend->pending.front().submit_ns + timeout <= now_ns) {
      UpstreamRequest request = std::move(backend->pending.front());
      backend->pending.pop_front();
      backend->shard->pending.Add(-1);
      backend->shard->errors[static_cast<int>(UpstreamError::kTimeout)].Add();
      DeliverError(request.link, request.seq, UpstreamError::kTimeout);
    }
    CheckDrained(backend);
    ExpireDrainWaiters(backend, now_ns);
  }
}

int64_t UpstreamPool::NextDeadlineNs() const {
  int64_t deadline = dirty_.empty() && !connect_wanted_ ? INT64_MAX : 0;
  const int64_t timeout = absl::ToInt64Nanoseconds(options_.timeout);
  for (const auto& backend : backends_) {
    for (const auto& connection : backend->connections) {
      if (connection->phase() == UpstreamConnection::Phase::kIdle) {
        if (backend->eligible) deadline = std::min(deadline, connection->retry_at_ns());
        continue;
      }
      deadline = std::min(deadline, connection->NextDeadlineNs());
    }
    if (!backend->pending.empty()) deadline = std::min(deadline, backend->pending.front().submit_ns + timeout);
    for (const auto& waiter : backend->drained_waiters) deadline = std::min(deadline, waiter.deadline_ns);
  }
  return deadline;
}

void UpstreamPool::OnTriggerModeChanged() {
  for (auto& backend : backends_) {
    for (auto& connection : backend->connections) connection->OnTriggerModeChanged();
  }
}

void UpstreamPool::MoveToNewPoller(Poller& retired) {
  if (connect_epoll_fd_ >= 0) {
    (void)retired.Release(connect_epoll_fd_);
    if (!loop_->poller().Add(connect_epoll_fd_, this, Poller::kReadable, FdRole::kNotify).ok()) {
      // Connects in progress would never finish: fail them, later ones retry.
      for (auto& backend : backends_) {
        for (auto& connection : backend->connections) {
          if (connection->phase() == UpstreamConnection::Phase::kConnecting) connection->OnConnected(ETIMEDOUT);
        }
      }
    }
  }
  for (auto& backend : backends_) {
    for (auto& connection : backend->connections) {
      if (connection->phase() == UpstreamConnection::Phase::kConnected) {
        connection->MoveToNewPoller(retired.Release(connection->fd()));
      }
    }
  }
}

absl::Status UpstreamPool::WatchConnect(int fd, UpstreamConnection* connection) {
  epoll_event event{};
  event.events = EPOLLOUT;
  event.data.fd = fd;
  if (epoll_ctl(connect_epoll_fd_, EPOLL_CTL_ADD, fd, &event) != 0) {
    return absl::InternalError(absl::StrCat("epoll_ctl(connector): ", std::strerror(errno)));
  }
  connecting_[fd] = connection;
  return absl::OkStatus();
}

void UpstreamPool::UnwatchConnect(int fd) {
  if (connecting_.erase(fd) == 0) return;
  (void)epoll_ctl(connect_epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void UpstreamPool::OnReady(uint32_t /*ready*/) {
  epoll_event events[64];
  for (;;) {
    const int n = epoll_wait(connect_epoll_fd_, events, 64, 0);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      // Looked up by fd: an earlier event's failure may have closed it.
      auto it = connecting_.find(events[i].data.fd);
      if (it == connecting_.end()) continue;
      UpstreamConnection* connection = it->second;
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(connection->fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      connection->OnConnected(err);
    }
    if (n < 64) return;
  }
}

}  // namespace gateway
