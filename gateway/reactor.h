// A reactor: one thread running one EventLoop with its own listening socket
// (SO_REUSEPORT), its connections, buffers and statistics.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "gateway/buffer.h"
#include "gateway/connection.h"
#include "gateway/connection_events.h"
#include "gateway/connection_host.h"
#include "gateway/connection_observer.h"
#include "gateway/connection_timers.h"
#include "gateway/drain_schedule.h"
#include "gateway/event_loop.h"
#include "gateway/frame_handler.h"
#include "gateway/list_query.h"
#include "gateway/listener.h"
#include "gateway/options.h"
#include "gateway/reactor_stats.h"
#include "gateway/read_scratch.h"
#include "gateway/shared_counters.h"
#include "gateway/upstream_pool.h"

namespace gateway {

// Thread affinity: Post(), index() and the const accessors of stats() are
// safe from any thread; every other method runs on the reactor's own thread
// (asserted in debug and sanitizer builds), reached from others via Post().
//
// The reactor owns its connections' table and admission; it lends them the
// loop's services (ConnectionContext) and hears back from them through
// ConnectionHost. Timers and event fan-out are classes of their own.
class Reactor final : private ConnectionHost, private ListenerHost {
 public:
  // With `upstream` enabled, frames go to backends through an UpstreamPool
  // (`on_eject` is its EjectCallback) instead of to `handler`.
  Reactor(int index, int listen_fd, const ReactorOptions& options, SharedCounters* shared,
          std::unique_ptr<FrameHandler> handler, const UpstreamOptions& upstream = {},
          UpstreamPool::EjectCallback on_eject = nullptr);
  ~Reactor() override;
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Starts the thread. The loop runs until a shutdown drains it.
  void Start();
  void Join();
  bool Post(EventLoop::Task task) { return loop_.Post(std::move(task)); }

  int index() const { return index_; }
  // Loop-thread only, except before Start(); null unless upstream mode.
  UpstreamPool* upstream() { return upstream_.get(); }
  const ReactorStats& stats() const { return stats_; }

  // --- Loop-thread only: the control plane reaches these through Post(). ---
  // epoll's trigger mode: applied now if on epoll, else on the next move to epoll.
  void SetTriggerMode(TriggerMode mode);
  IoModel io_model() const { return loop_.poller().model(); }
  // Moves the listener and every connection to a new back-end between two
  // loop turns: the retired one stops what it has in flight and hands over
  // what it holds (bytes received but not read, taken but not sent, accepted
  // but not admitted), so nothing is lost, duplicated or reordered. Refused
  // (and nothing changes) if `model` cannot be made here, or for select while
  // any fd is >= FD_SETSIZE.
  absl::Status SetIoModel(IoModel model);
  // Connections whose fd select could not watch.
  int CountFdsOverSelectLimit() const;
  // Takes the page in slices across loop turns, so a large page never holds
  // up I/O for more than about a millisecond, then runs `done` on this thread
  // with the matching connections with fd > query.after_fd, sorted by fd, at
  // most query.limit, and how many match in all (ignoring after/limit). The
  // page is not one instant's picture: each slice is taken when it runs.
  using ListDone = absl::AnyInvocable<void(std::vector<ConnectionInfo> page, size_t total) &&>;
  void ListConnections(const ListQuery& query, ListDone done);
  // The connection on `fd` if it has `id` (0 = any id).
  std::optional<ConnectionInfo> GetConnection(int fd, uint64_t id);
  bool CloseConnection(int fd, uint64_t id, CloseMode mode);  // false if not found
  void AddObserver(std::shared_ptr<ConnectionObserver> observer);
  void RemoveObserver(const ConnectionObserver* observer);
  // Serves an already-connected, non-blocking socket like an accepted one.
  void Adopt(int fd, const SocketAddress& peer) { Accepted(fd, peer); }
  // Stops accepting; each connection, at a random time within `spread`,
  // closes at its next frame boundary once its responses are delivered;
  // force-closes what is left at `deadline`, then the loop exits.
  void BeginShutdown(absl::Time deadline, absl::Duration spread = absl::ZeroDuration());
  // A connection DrainConnections may pick: open (not closing) and opened at
  // or before the cut-off.
  struct DrainCandidate {
    int64_t opened_ns;
    int fd;
    uint64_t id;
  };
  std::vector<DrainCandidate> DrainCandidates(int64_t opened_before_ns) const;
  // Drains each picked connection (closed at a frame boundary, answered
  // first) at its due time (loop clock); connections gone by then are skipped.
  void ScheduleDrains(const std::vector<DrainSchedule::Entry>& entries);

 private:
  struct ListJob;

  // ConnectionHost
  void ServiceLater(Connection* connection) override;
  bool OverBudget() override;
  void WaitForBudget(Connection* connection) override;
  void Closed(Connection* connection, CloseReason reason) override;
  // ListenerHost
  void Accepted(int fd, const SocketAddress& peer) override;
  void AcceptLater() override { accept_pending_ = true; }
  void OutOfFds() override;
  void PauseAccepting() override;

  // The loop, one turn per wakeup: wait, dispatch events and posted tasks,
  // run deferred work, expire deadlines, destroy what closed.
  void Run();
  int NextTimeoutMs() const;
  void RunDeferred();
  void ExpireDeadlines();
  void ResumeBudgetWaiters();
  void ResumeAccepting();
  // Registers the listener again (with a new back-end when `new_poller`).
  void RearmListener(bool new_poller = false);
  void ContinueList(std::shared_ptr<ListJob> job);
  Connection* FindConnection(int fd, uint64_t id);
  // A copy of the table, for loops that may close (and so unlist) connections.
  std::vector<Connection*> AllConnections() const;

  const int index_;
  const ReactorOptions options_;
  TriggerMode trigger_mode_;  // epoll's, kept across moves to other back-ends
  SharedCounters* const shared_;
  std::unique_ptr<FrameHandler> handler_;
  ReactorStats stats_;
  EventLoop loop_;
  BufferPool pool_;
  ReadScratch scratch_;
  ConnectionTimers timers_;
  ConnectionEvents events_;
  std::unique_ptr<UpstreamPool> upstream_;
  const ConnectionContext context_;
  std::unique_ptr<Listener> listener_;
  std::thread thread_;

  absl::btree_map<int, std::unique_ptr<Connection>> connections_;  // ordered: pages walk it by fd
  std::vector<std::unique_ptr<Connection>> closed_;                // destroyed after each wakeup
  // Connections to service again after this turn's events (ServiceLater).
  std::vector<Connection*> deferred_;
  std::vector<Connection*> deferred_running_;
  bool accept_pending_ = false;  // the listener has more to accept (AcceptLater)

  std::vector<Connection*> budget_waiters_;  // stopped reading: over --max_queued_bytes
  bool over_budget_ = false;                 // with hysteresis, see OverBudget()
  int64_t accept_resume_ns_ = 0;             // accepting paused until then; 0 = not paused

  bool shutting_down_ = false;
  int64_t shutdown_deadline_ns_ = 0;
  DrainSchedule drains_;  // max-age deadlines and spread drains
  std::minstd_rand jitter_rng_;
  bool running_ = false;
};

}  // namespace gateway
