// The data plane as one object: listening sockets, reactor threads, and the
// thread-safe API the control plane and metrics use to look inside it.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/connection_observer.h"
#include "gateway/fd_limit.h"
#include "gateway/frame_handler.h"
#include "gateway/options.h"
#include "gateway/reactor.h"

namespace gateway {

// A page of a connection listing, sorted by fd.
struct ConnectionPage {
  std::vector<ConnectionInfo> connections;
  size_t total_matching = 0;  // across all pages
  int next_after_fd = -1;     // pass as ListQuery::after_fd for the next page; -1 = last page
};

// Thread-safe: every public method may be called from any thread other than a
// reactor's. Calls that read or change connections post a task to each
// reactor and wait for the replies; the reactors' I/O path takes no lock.
class Gateway {
 public:
  // Binds the data-plane port (a busy port fails here, not later) and builds
  // the reactors. Nothing runs until Start().
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options);
  ~Gateway();  // Shutdown(0) if still running
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  void Start();
  // Stops accepting, answers what has arrived, flushes, closes every
  // connection, and joins the reactors. Connections still open at
  // `drain_timeout` are closed. Idempotent; blocks until done.
  void Shutdown(absl::Duration drain_timeout);

  int port() const { return port_; }
  int num_reactors() const { return static_cast<int>(reactors_.size()); }
  absl::Time started_at() const { return started_at_; }
  // The options in force: reactors and max_connections resolved.
  const GatewayOptions& options() const { return options_; }
  // The fd limit, open fds and reserve measured at Create(), which the
  // default max_connections was derived from.
  const FdBudget& fd_budget() const { return fd_budget_; }

  TriggerMode trigger_mode() const { return mode_.load(std::memory_order_acquire); }
  // Re-arms every listener and connection on every reactor; returns once all
  // have switched. Switches that change nothing are not counted.
  absl::Status SetTriggerMode(TriggerMode mode);
  uint64_t trigger_mode_switches() const { return switches_.load(std::memory_order_relaxed); }

  absl::StatusOr<ConnectionPage> ListConnections(const ListQuery& query);
  // NOT_FOUND if no reactor has `fd`, or (when `id` is not 0) if the
  // connection on `fd` is not the one with `id`: fds are reused, ids never.
  absl::StatusOr<ConnectionInfo> GetConnection(int fd, uint64_t id = 0);
  // Graceful: pending responses are flushed, then EOF. NOT_FOUND as above.
  absl::Status CloseConnection(int fd, uint64_t id, bool force);

  // Hands an already-connected stream socket (TCP, or one end of a Unix
  // socketpair) to a reactor, which serves it like an accepted client. Takes
  // ownership of `fd` even on error. For embedding and tests.
  absl::Status AdoptConnection(int fd);

  // The observer receives events on reactor threads until removed.
  absl::Status AddObserver(std::shared_ptr<ConnectionObserver> observer);
  void RemoveObserver(const ConnectionObserver* observer);

  // Lock-free counters for metrics; valid for the gateway's lifetime.
  const ReactorStats& reactor_stats(int index) const { return reactors_[index]->stats(); }
  int64_t active_connections() const { return shared_.active.load(std::memory_order_relaxed); }

 private:
  explicit Gateway(GatewayOptions options) : options_(std::move(options)) {}
  // Runs `fn(reactor, done)` on every reactor's thread; returns once every
  // reactor has called its `done` (at once, or later from a task of its
  // own). FAILED_PRECONDITION before Start(), UNAVAILABLE once shut down,
  // DEADLINE_EXCEEDED if a reactor does not answer within 30 s.
  using ReactorDone = absl::AnyInvocable<void()>;
  absl::Status RunOnAllReactorsDeferred(absl::AnyInvocable<void(Reactor&, ReactorDone done)> fn);
  // The same for work that is done when `fn` returns.
  absl::Status RunOnAllReactors(absl::AnyInvocable<void(Reactor&)> fn);

  GatewayOptions options_;
  FdBudget fd_budget_;
  int port_ = 0;
  SharedCounters shared_;
  std::vector<std::unique_ptr<Reactor>> reactors_;
  absl::Time started_at_;
  std::atomic<TriggerMode> mode_{TriggerMode::kEdge};
  std::atomic<uint64_t> switches_{0};
  std::atomic<bool> running_{false};  // Start() has run: reactors answer posts
  std::atomic<uint32_t> next_adopter_{0};  // round robin for AdoptConnection

  // std::mutex, not absl::Mutex: see EventLoop (TSan visibility).
  std::mutex switch_mu_;  // one trigger-mode switch at a time
  std::mutex lifecycle_mu_;
  bool started_ = false;  // guarded by lifecycle_mu_
  bool stopped_ = false;  // guarded by lifecycle_mu_
};

}  // namespace gateway
