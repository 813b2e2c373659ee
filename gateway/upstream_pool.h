// A reactor's side of upstream mode: its backends as the registry last told
// it, their upstream connections, the requests waiting for a connection,
// load balancing, request timeouts and passive health.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/string_view.h"
#include "gateway/poller.h"
#include "gateway/socket_util.h"
#include "gateway/upstream_connection.h"
#include "gateway/upstream_link.h"
#include "gateway/upstream_stats.h"
#include "gateway/upstream_types.h"

namespace gateway {

class Connection;
class ConnectionHost;
class EventLoop;
struct ReactorStats;

// The response a client gets in place of one a backend failed to give.
inline constexpr absl::string_view kErrorFrame = "00000";

// What the registry tells every reactor about one backend.
struct BackendUpdate {
  std::string address;
  SocketAddress resolved{};
  uint32_t weight = 1;
  bool eligible = true;  // healthy and not draining: takes new requests
  std::shared_ptr<BackendStats> stats;
  // Updates race through different threads' posts: an older one is ignored.
  uint64_t version = 0;
};

// One backend on one reactor. Loop-thread only.
struct PoolBackend {
  std::string address;
  SocketAddress resolved{};
  uint32_t weight = 1;
  bool eligible = true;
  bool removing = false;
  std::shared_ptr<BackendStats> stats;
  BackendShard* shard = nullptr;
  std::vector<std::unique_ptr<UpstreamConnection>> connections;
  std::deque<UpstreamRequest> pending;  // waiting for a connection with room
  int64_t rr_current = 0;               // smooth weighted round robin
  int consecutive_errors = 0;
  // DrainBackend: each runs with true once nothing is pending or in flight
  // for it, or with false at its deadline.
  struct DrainWaiter {
    int64_t deadline_ns;
    absl::AnyInvocable<void(bool drained) &&> done;
  };
  std::vector<DrainWaiter> drained_waiters;
  uint64_t version = 0;   // of the last BackendUpdate applied
  uint64_t work() const;  // pending + queued on its connections
};

// Loop-thread only; one per reactor, owned by it.
class UpstreamPool : private PollHandler {
 public:
  // Called on this loop's thread when a backend failed `eject_after`
  // requests in a row here (the registry ejects it everywhere).
  using EjectCallback = absl::AnyInvocable<void(const std::string& address, std::string reason)>;

  UpstreamPool(const UpstreamOptions& options, int reactor_index, EventLoop* loop, ReactorStats* stats,
               ConnectionHost* host, EjectCallback on_eject);
  ~UpstreamPool() override;
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  const UpstreamOptions& options() const { return options_; }
  EventLoop* loop() const { return loop_; }
  int reactor_index() const { return reactor_index_; }
  ReactorStats* stats() const { return stats_; }

  // On the loop thread once its poller is installed: registers the connector
  // and opens the first upstream connections.
  absl::Status Start();
  // Closes every upstream connection (the loop is ending).
  void Stop();

  // --- From the registry, through posted tasks. ---
  void Update(const BackendUpdate& update);  // adds, or changes weight/eligibility/address
  // Removes it now: what is still queued for it goes elsewhere, what is in
  // flight gets the error response.
  void Remove(const std::string& address);
  // Runs `done(true)` once `address` has nothing pending or in flight here
  // (at once if so now, or if unknown), or `done(false)` at `deadline_ns`.
  void WhenDrained(const std::string& address, int64_t deadline_ns, absl::AnyInvocable<void(bool drained) &&> done);

  // --- From client connections. ---
  // Sends a request frame (header included) to a backend. Returns the error
  // to answer it with at once (no backend to take it), or nothing: the
  // reply comes later through the client's link, never from inside this
  // call (the client is in the middle of its read).
  std::optional<UpstreamError> Submit(const std::shared_ptr<ClientLink>& link, uint64_t seq, absl::string_view frame,
                                      int64_t read_ns);
  // True while every backend that could take the client's requests is full:
  // the client stops reading and is serviced again when room frees.
  bool FullFor(const std::shared_ptr<ClientLink>& link);
  // FullFor(), or clients that waited for room have not had their turn yet:
  // a client that has not waited queues behind them (first come, first
  // served; without it, clients answered this turn read again at once and
  // those that waited starve: a 4x p99 at 1,000 clients x 16 in flight).
  bool MustWaitForRoom(const std::shared_ptr<ClientLink>& link);
  // The client stopped reading because MustWaitForRoom() said so.
  void WaitForRoom(const std::shared_ptr<ClientLink>& link);

  // --- From the reactor's loop. ---
  // End of a loop turn: one write per upstream connection with output.
  void FlushAll();
  void Expire(int64_t now_ns);
  int64_t NextDeadlineNs() const;
  void OnTriggerModeChanged();
  void MoveToNewPoller(Poller& retired);

  // --- From upstream connections. ---
  // A reply (a whole frame) or an error for request `seq` of `link`.
  void Deliver(const std::shared_ptr<ClientLink>& link, uint64_t seq, absl::string_view frame);
  void DeliverError(const std::shared_ptr<ClientLink>& link, uint64_t seq, UpstreamError error);
  // A request written and answered: the backend works.
  void Succeeded(PoolBackend* backend);
  // A request failed on `backend` (timeout, reset, protocol): counts toward
  // ejection.
  void Failed(PoolBackend* backend, UpstreamError error, absl::string_view detail);
  // A request that never reached `from` goes to another backend (or gets
  // the error response if there is none).
  void Redispatch(PoolBackend* from, UpstreamRequest request);
  // Output was queued on `connection`: flush it at the end of this turn.
  void MarkDirty(UpstreamConnection* connection);
  // `connection` has room again (or connected): move pending requests to it.
  void Pump(PoolBackend* backend);
  // The connector: watch `fd` until its connect completes.
  absl::Status WatchConnect(int fd, UpstreamConnection* connection);
  void UnwatchConnect(int fd);

 private:
  void OnReady(uint32_t ready) override;  // the connector's epoll fd
  PoolBackend* Find(absl::string_view address);
  // The backend for a new request of `link`, not `exclude`; null if none.
  PoolBackend* Choose(const ClientLink& link, const PoolBackend* exclude);
  UpstreamConnection* ConnectionWithRoom(PoolBackend* backend, const ClientLink& link);
  void CheckDrained(PoolBackend* backend);
  // Sends elsewhere every request waiting for `backend`'s connections.
  void RedispatchPending(PoolBackend* backend);
  void ExpireDrainWaiters(PoolBackend* backend, int64_t now_ns);
  void ResumeWaiters();

  const UpstreamOptions options_;
  const int reactor_index_;
  EventLoop* const loop_;
  ReactorStats* const stats_;
  ConnectionHost* const host_;
  EjectCallback on_eject_;
  int connect_epoll_fd_ = -1;
  absl::flat_hash_map<int, UpstreamConnection*> connecting_;  // by fd, watched by the connector
  bool started_ = false;
  std::vector<std::unique_ptr<PoolBackend>> backends_;
  std::vector<UpstreamConnection*> dirty_;
  bool connect_wanted_ = false;  // requests wait for idle connections: connect them at FlushAll
  std::vector<std::shared_ptr<ClientLink>> room_waiters_;  // in arrival order
  size_t requeued_ = 0;         // granted clients put back at the front since the last ResumeWaiters
  bool grants_pending_ = false;  // ResumeWaiters granted room to clients not serviced yet
  std::minstd_rand rng_;
};

}  // namespace gateway
