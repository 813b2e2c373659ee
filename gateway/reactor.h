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

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "gateway/buffer.h"
#include "gateway/connection.h"
#include "gateway/connection_observer.h"
#include "gateway/event_loop.h"
#include "gateway/frame_codec.h"
#include "gateway/frame_handler.h"
#include "gateway/listener.h"
#include "gateway/reactor_stats.h"

namespace gateway {

// Settings every reactor shares; immutable once the gateway starts.
struct ReactorOptions {
  TriggerMode trigger_mode = TriggerMode::kEdge;
  int64_t max_connections = 0;  // across all reactors; 0 = unlimited
  absl::Duration idle_timeout = absl::ZeroDuration();  // zero = off
  size_t high_water = 256 * 1024;  // pause reading above this much queued output
  size_t low_water = 64 * 1024;    // resume reading below this
  int read_budget = 16;            // recv() calls per connection per wakeup
  int accept_budget = 64;          // accept() calls per wakeup
  bool measure_latency = true;     // time every request (two clock reads per batch)
  absl::Duration linger = absl::Seconds(5);  // wait for the peer's FIN after ours
};

// State shared by all reactors of a gateway; touched on accept and close only.
struct SharedCounters {
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> next_id{1};
};

// Filter and page for connection listings.
struct ListQuery {
  std::optional<ConnectionState> state;
  int after_fd = -1;  // only fds greater than this
  size_t limit = 0;   // 0 = no limit
};

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
  // Matching connections with fd > query.after_fd, sorted by fd, at most
  // query.limit; `*total` gets how many match in all (ignoring after/limit).
  std::vector<ConnectionInfo> ListConnections(const ListQuery& query, size_t* total);
  std::optional<ConnectionInfo> GetConnection(int fd);
  bool CloseConnection(int fd, bool force);  // false if this reactor has no such fd
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
  void OnStateChanged(Connection* connection, ConnectionState old_state);
  void OnClosed(Connection* connection, CloseReason reason);

  // Listener callbacks.
  void OnAccepted(int fd, const SocketAddress& peer);
  void OweAccept() { accept_owed_ = true; }

 private:
  void Run();
  int NextTimeoutMs() const;
  void ServiceOwed();
  void ExpireTimers();
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
  absl::flat_hash_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> closed_;  // destroyed after each wakeup
  std::vector<Connection*> owed_;
  std::vector<Connection*> owed_running_;
  bool accept_owed_ = false;
  std::list<Connection*> idle_list_;    // by time of last relink, oldest first
  std::list<Connection*> linger_list_;  // by time lingering began
  int64_t idle_timeout_ns_ = 0;
  int64_t linger_ns_ = 0;
  int64_t idle_granularity_ns_ = 0;

  std::vector<std::shared_ptr<ConnectionObserver>> observers_;
  int state_observers_ = 0;

  bool shutting_down_ = false;
  int64_t shutdown_deadline_ns_ = 0;
  bool running_ = false;
};

// The loop's monotonic clock in nanoseconds.
int64_t MonotonicNowNs();

}  // namespace gateway
