// A reactor: one thread running one EventLoop with its own listening socket
// (SO_REUSEPORT), its connections, buffers and statistics.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "gateway/buffer.h"
#include "gateway/connection.h"
#include "gateway/connection_observer.h"
#include "gateway/event_loop.h"
#include "gateway/frame_codec.h"
#include "gateway/frame_handler.h"
#include "gateway/list_query.h"
#include "gateway/listener.h"
#include "gateway/options.h"
#include "gateway/reactor_stats.h"
#include "gateway/shared_counters.h"

namespace gateway {

// Thread affinity: Post() and the const accessors of stats() are safe from any
// thread; every other method runs on the reactor's own thread.
class Reactor {
 public:
  Reactor(int index, int listen_fd, const ReactorOptions& options, SharedCounters* shared,
          std::unique_ptr<FrameHandler> handler);
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  // Starts the thread. The loop runs until a shutdown drains it.
  void Start();
  void Join();
  bool Post(EventLoop::Task task) { return loop_.Post(std::move(task)); }

  int index() const { return index_; }
  const ReactorStats& stats() const { return stats_; }

  // --- Loop-thread only: the control plane reaches these through Post(). ---
  void SetTriggerMode(TriggerMode mode);
  TriggerMode trigger_mode() const { return loop_.poller().mode(); }
  // Takes the page in slices across loop turns, so a large page never holds
  // up I/O for more than about a millisecond, then runs `done` on this thread
  // with the matching connections with fd > query.after_fd, sorted by fd, at
  // most query.limit, and how many match in all (ignoring after/limit). The
  // page is not one instant's picture: each slice is taken when it runs.
  using ListDone = absl::AnyInvocable<void(std::vector<ConnectionInfo> page, size_t total) &&>;
  void ListConnections(const ListQuery& query, ListDone done);
  // The connection on `fd`, if it has `id` (0 = any id); nullptr otherwise.
  Connection* FindConnection(int fd, uint64_t id);
  std::optional<ConnectionInfo> GetConnection(int fd, uint64_t id);
  bool CloseConnection(int fd, uint64_t id, bool force);  // false if not found
  void AddObserver(std::shared_ptr<ConnectionObserver> observer);
  void RemoveObserver(const ConnectionObserver* observer);
  // Stops accepting, answers what has arrived, flushes and closes every
  // connection; force-closes what is left at `deadline`, then the loop exits.
  void BeginShutdown(absl::Time deadline);

  // --- Loop-thread only: services for this reactor's connections. ---
  ReactorStats& mutable_stats() { return stats_; }
  const ReactorOptions& options() const { return options_; }
  BufferPool& pool() { return pool_; }
  FrameHandler& handler() { return *handler_; }
  Poller& poller() { return loop_.poller(); }
  // The buffer reads land in: a pool block big enough for any whole frame.
  char* scratch() { return scratch_; }
  static constexpr size_t kScratchSize = 128 * 1024;
  static_assert(kScratchSize >= kMaxFrameSize && kScratchSize <= BufferPool::kMaxBlock);
  // Hands the scratch block over (to become a connection's input buffer, which
  // saves copying a large partial frame) and takes a fresh one from the pool.
  char* TakeScratch();
  // The loop's clock, read once per wakeup.
  int64_t now_ns() const { return now_ns_; }
  bool has_state_observers() const { return state_observers_ > 0; }

  void Owe(Connection* connection);      // service again without a new event
  void Touched(Connection* connection);  // traffic: push back its idle deadline
  void StartLinger(Connection* connection);
  // A new frame began (its first byte arrived now): its deadline starts.
  void FrameStarted(Connection* connection);
  void FrameDone(Connection* connection);  // no frame pending any more
  // True while the buffers of all reactors hold more than --max_queued_bytes
  // (until they drain below 7/8 of it). A connection that finds it so stops
  // reading and calls WaitForBudget(); it is serviced again once under.
  bool OverBudget();
  void WaitForBudget(Connection* connection);
  void OnStateChanged(Connection* connection, ConnectionState old_state);
  void OnClosed(Connection* connection, CloseReason reason);

  // Listener callbacks.
  void OnAccepted(int fd, const SocketAddress& peer);
  void OweAccept() { accept_owed_ = true; }
  // Out of fds with nothing to shed with: stop accepting for a moment rather
  // than spin on a listener that stays readable.
  void PauseAccepting();
  // accept() failed for want of fds: admit no more connections than are
  // open now for a second (renewed while the failures go on).
  void OutOfFds();

 private:
  struct ListJob;
  void Run();
  int NextTimeoutMs() const;
  void ServiceOwed();
  void ExpireTimers();
  void ResumeBudgetWaiters();
  void ContinueList(std::shared_ptr<ListJob> job);
  void Publish(const ConnectionEvent& event);
  ConnectionEvent EventFor(const Connection& connection, ConnectionEvent::Type type) const;
  void Unlink(Connection* connection);
  // A copy of the table, for loops that may close (and so unlist) connections.
  std::vector<Connection*> AllConnections() const;

  const int index_;
  const ReactorOptions options_;
  SharedCounters* const shared_;
  std::unique_ptr<FrameHandler> handler_;
  ReactorStats stats_;
  EventLoop loop_;
  BufferPool pool_;
  char* scratch_;  // a kScratchSize block from pool_
  std::unique_ptr<Listener> listener_;
  std::thread thread_;

  int64_t now_ns_ = 0;
  absl::btree_map<int, std::unique_ptr<Connection>> connections_;  // ordered: pages walk it by fd
  std::vector<std::unique_ptr<Connection>> closed_;  // destroyed after each wakeup
  std::vector<Connection*> owed_;
  std::vector<Connection*> owed_running_;
  bool accept_owed_ = false;
  std::list<Connection*> idle_list_;    // by time of last relink, oldest first
  std::list<Connection*> linger_list_;  // by time lingering began
  std::list<Connection*> frame_list_;   // by time the pending frame began
  int64_t idle_timeout_ns_ = 0;
  int64_t linger_ns_ = 0;
  int64_t frame_timeout_ns_ = 0;
  int64_t idle_granularity_ns_ = 0;

  std::vector<Connection*> budget_waiters_;  // stopped reading: over --max_queued_bytes
  bool over_budget_ = false;                 // with hysteresis, see OverBudget()
  int64_t accept_resume_ns_ = 0;             // accepting paused until then; 0 = not paused

  std::vector<std::shared_ptr<ConnectionObserver>> observers_;
  int state_observers_ = 0;

  bool shutting_down_ = false;
  int64_t shutdown_deadline_ns_ = 0;
  bool running_ = false;
};

// The loop's monotonic clock in nanoseconds.
int64_t MonotonicNowNs();

}  // namespace gateway
