// The blocking IO model (--io_model=blocking, chosen at start only): an
// acceptor thread doing blocking accept4(), and one thread per connection
// doing blocking recv()/send(), the model the notes start from. It exists to
// show its own cost: a thread (a 64 KiB stack, see kThreadStackBytes) and a
// 16 KiB buffer per connection, a context switch per request, and a lock
// per batch, since the shared ReactorStats are single-writer counters and
// every connection thread updates them under one mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/blocking_connection.h"
#include "gateway/connection_observer.h"
#include "gateway/frame_handler.h"
#include "gateway/list_query.h"
#include "gateway/options.h"
#include "gateway/reactor_stats.h"
#include "gateway/shared_counters.h"
#include "gateway/socket_util.h"
#include "gateway/types.h"

namespace gateway {

// The stack of each connection thread (larger under sanitizers, whose
// instrumentation needs the room). Small on purpose: it is the model's cost.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr size_t kThreadStackBytes = 512 * 1024;
#else
inline constexpr size_t kThreadStackBytes = 64 * 1024;
#endif

// Thread-safe: every public method may be called from any thread but a
// connection thread. Owns the listening fd, the acceptor thread and every
// connection thread (joined by Shutdown()). Locks, always in this order:
// table_mu_ (the connection table, touched at open, close, list and close
// requests), then report_mu_ (the shared stats and the observers).
class BlockingServer final : private BlockingHost {
 public:
  // Takes ownership of `listen_fd` (a bound, listening socket).
  BlockingServer(int listen_fd, const ReactorOptions& options, SharedCounters* shared,
                 std::shared_ptr<FrameHandlerFactory> handler_factory);
  ~BlockingServer() override;  // Shutdown(0) if still running
  BlockingServer(const BlockingServer&) = delete;
  BlockingServer& operator=(const BlockingServer&) = delete;

  // Makes the listener blocking and starts the acceptor.
  absl::Status Start();
  // Stops accepting; asks every connection to finish what it has read
  // (shutdown SHUT_RD), deliver and close; at `drain_timeout` forces what is
  // left (shutdown SHUT_RDWR); joins every thread. Idempotent.
  void Shutdown(absl::Duration drain_timeout);

  const ReactorStats& stats() const { return stats_; }
  // Shutdown() has finished: every connection is closed and joined.
  bool stopped() const { return stopped_.load(std::memory_order_acquire); }

  // The matching connections with fd > query.after_fd, sorted by fd, at most
  // query.limit, and how many match in all.
  void ListConnections(const ListQuery& query, std::vector<ConnectionInfo>* page, size_t* total);
  // The connection on `fd` if it has `id` (0 = any id).
  std::optional<ConnectionInfo> GetConnection(int fd, uint64_t id);
  bool CloseConnection(int fd, uint64_t id, CloseMode mode);  // false if not found
  // Serves a connected socket (made blocking here) on a thread of its own.
  // Takes ownership of `fd`; UNAVAILABLE once shutting down.
  absl::Status Adopt(int fd, const SocketAddress& peer);
  void AddObserver(std::shared_ptr<ConnectionObserver> observer);
  void RemoveObserver(const ConnectionObserver* observer);

 private:
  // BlockingHost, on connection threads.
  void Report(BlockingConnection& connection, const Batch& batch,
              std::initializer_list<ConnectionState> states) override;
  void Closed(BlockingConnection& connection, CloseReason reason) override;

  void AcceptLoop();
  // Sleeps ~100 ms (out of fds), or less if Shutdown() begins.
  void BackOff();
  // Admission as a reactor does it (--max_connections over all), then a thread.
  void Admit(int fd, const SocketAddress& peer);
  // Counts a connection accepted and closed at once. Under table_mu_.
  void Reject(int fd, CloseReason reason);
  // Joins the threads of connections that have closed.
  void Reap();
  void Publish(ConnectionEvent::Type type, const BlockingConnection& connection, ConnectionState old_state,
               CloseReason reason);  // under report_mu_

  const int listen_fd_;
  const ReactorOptions options_;
  SharedCounters* const shared_;
  const std::shared_ptr<FrameHandlerFactory> handler_factory_;
  ReactorStats stats_;  // written under report_mu_ only
  std::thread acceptor_;
  std::atomic<bool> stop_accepting_{false};

  std::mutex table_mu_;
  std::condition_variable table_changed_;                           // a connection closed, or accepting stopped
  std::map<int, std::unique_ptr<BlockingConnection>> connections_;  // by fd; guarded by table_mu_
  std::vector<std::unique_ptr<BlockingConnection>> finished_;       // to join; guarded by table_mu_
  bool started_ = false;                                            // guarded by table_mu_
  bool stopping_ = false;                                           // guarded by table_mu_
  std::atomic<bool> stopped_{false};

  std::mutex report_mu_;
  std::vector<std::shared_ptr<ConnectionObserver>> observers_;  // guarded by report_mu_
  int state_observers_ = 0;                                     // guarded by report_mu_
};

}  // namespace gateway
