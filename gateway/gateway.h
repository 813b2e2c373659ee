// The data plane as one object: listening sockets, reactor threads, and the
// thread-safe API the control plane and metrics use to look inside it. This
// header is the data plane's facade: options, stats and connection snapshots,
// never a connection, buffer or event loop.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/connection_observer.h"
#include "gateway/fd_limit.h"
#include "gateway/frame_handler.h"
#include "gateway/list_query.h"
#include "gateway/options.h"
#include "gateway/reactor_stats.h"
#include "gateway/shared_counters.h"
#include "gateway/types.h"
#include "gateway/upstream_types.h"

namespace gateway {

class BlockingServer;
class Reactor;
class UpstreamProber;
class UpstreamRegistry;
struct ProbeResult;
struct BackendUpdate;

// Which connections DrainConnections closes: a fraction or a count of the
// open ones at least `min_age` old, oldest first.
struct DrainQuery {
  std::optional<double> fraction;  // (0, 1], rounded up
  std::optional<uint64_t> count;   // at most this many
  absl::Duration min_age = absl::ZeroDuration();
  absl::Duration spread = absl::ZeroDuration();  // the closes spread evenly over it, oldest first
};

struct DrainResult {
  uint64_t selected = 0;  // connections that will close
  uint64_t matching = 0;  // open connections at least min_age old
};

// A page of a connection listing, sorted by fd.
struct ConnectionPage {
  std::vector<ConnectionInfo> connections;
  size_t total_matching = 0;  // across all pages
  int next_after_fd = -1;     // pass as ListQuery::after_fd for the next page; -1 = last page
  bool has_more() const { return next_after_fd >= 0; }
};

// Thread-safe: every public method may be called from any thread; the
// synchronous ones (which wait) not from a reactor's. Calls that read or
// change connections post a task to each reactor and gather the replies: the
// asynchronous variants return at once and run `done` when the last reactor
// has replied, on that reactor's thread, so a caller such as a gRPC handler
// never blocks its thread on the data plane. The reactors' I/O path takes no
// lock. `done` runs exactly once: on the calling thread if the call fails
// before anything is posted (FAILED_PRECONDITION before Start()), otherwise
// on a reactor thread (UNAVAILABLE if a reactor shut down before it could
// reply). It must not block, nor call a synchronous method of this class.
// The blocking model (one thread per connection, no reactor) answers these
// calls on the calling thread, before they return.
class Gateway {
 public:
  // Binds the data-plane port (a busy port fails here, not later) and builds
  // the reactors. Nothing runs until Start().
  static absl::StatusOr<std::unique_ptr<Gateway>> Create(GatewayOptions options);
  ~Gateway();  // Shutdown(0) if still running
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  void Start();
  // Stops accepting; every connection closes at a frame boundary once what
  // it sent is answered (each at a random time within `spread`, so clients
  // do not all reconnect elsewhere at once); joins the reactors. Connections
  // still open at `drain_timeout` are closed. Idempotent; blocks until done.
  void Shutdown(absl::Duration drain_timeout, absl::Duration spread = absl::ZeroDuration());
  // The process has been asked to stop (SIGTERM) and is draining, or soon
  // will: reported in stats while the data plane still serves.
  void AnnounceDrain() { draining_.store(true, std::memory_order_release); }
  bool draining() const { return draining_.load(std::memory_order_acquire); }


  int port() const { return port_; }
  // The blocking model counts as one reactor: its server's stats are index 0.
  int num_reactors() const { return blocking_ != nullptr ? 1 : static_cast<int>(reactors_.size()); }
  absl::Time started_at() const { return started_at_; }
  // The options in force: reactors and max_connections resolved.
  const GatewayOptions& options() const { return options_; }
  // The fd limit, open fds and reserve measured at Create(), which the
  // default max_connections was derived from.
  const FdBudget& fd_budget() const { return fd_budget_; }

  using StatusDone = absl::AnyInvocable<void(absl::Status) &&>;
  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

  TriggerMode trigger_mode() const { return mode_.load(std::memory_order_acquire); }
  // Re-arms every listener and connection on every reactor; done once all
  // have switched. Switches that change nothing are not counted. Switches
  // run one at a time in the order asked for: one asked for while another
  // runs is queued, and runs even if its caller has gone by then.
  void SetTriggerMode(TriggerMode mode, StatusDone done);
  uint64_t trigger_mode_switches() const { return switches_.load(std::memory_order_relaxed); }

  // The IO model every reactor runs (they change together).
  IoModel io_model() const { return io_model_.load(std::memory_order_acquire); }
  // Moves every listener and connection of every reactor to `model`'s
  // back-end; done once all have moved (queued behind, and serialized with,
  // trigger-mode switches). FAILED_PRECONDITION, with the current model left
  // in place, when: the gateway runs or is asked for a start-time-only model
  // (blocking, signal); `model` is select and connections sit on fds >= 1024
  // (the message says how many); io_uring is refused here (the errno and the
  // fix). Switches that change nothing are not counted.
  void SetIoModel(IoModel model, StatusDone done);
  absl::Status SetIoModel(IoModel model);  // waits
  // Whether `model`'s back-end can run on this machine (io_uring: the kernel
  // or a seccomp profile may refuse it: FAILED_PRECONDITION with the errno),
  // without keeping anything. Any thread.
  static absl::Status ProbeIoModel(IoModel model);
  uint64_t io_model_switches() const { return io_switches_.load(std::memory_order_relaxed); }
  // How long the last IO-model switch took, from the first reactor starting
  // it to the last one done (zero before any).
  absl::Duration last_io_model_switch_duration() const {
    return absl::Nanoseconds(last_io_switch_ns_.load(std::memory_order_relaxed));
  }

  // Merges one page from every reactor, sorted by fd; next_after_fd says
  // whether another page follows.
  void ListConnections(const ListQuery& query, Done<ConnectionPage> done);
  // NOT_FOUND if no reactor has `fd`, or (when `id` is not 0) if the
  // connection on `fd` is not the one with `id`: fds are reused, ids never.
  void GetConnection(int fd, uint64_t id, Done<ConnectionInfo> done);
  // kFlush: pending responses are delivered, then EOF; kForce: closed at
  // once. NOT_FOUND as above.
  void CloseConnection(int fd, uint64_t id, CloseMode mode, StatusDone done);

  // The same, waiting for the result (at most 30 s: DEADLINE_EXCEEDED).
  absl::Status SetTriggerMode(TriggerMode mode);
  absl::StatusOr<ConnectionPage> ListConnections(const ListQuery& query);
  absl::StatusOr<ConnectionInfo> GetConnection(int fd, uint64_t id = 0);
  absl::Status CloseConnection(int fd, uint64_t id, CloseMode mode);

  // Rebalancing on demand: the chosen connections close at a frame boundary
  // once answered (close reason drained), over `query.spread`. Done once the
  // closes are scheduled. INVALID_ARGUMENT for no amount, a fraction outside
  // (0, 1] or a negative duration; FAILED_PRECONDITION in the blocking model
  // or once shutting down.
  void DrainConnections(const DrainQuery& query, Done<DrainResult> done);
  absl::StatusOr<DrainResult> DrainConnections(const DrainQuery& query);  // waits

  // Hands an already-connected stream socket (TCP, or one end of a Unix
  // socketpair) to a reactor, which serves it like an accepted client. Takes
  // ownership of `fd` even on error. For embedding and tests.
  absl::Status AdoptConnection(int fd);

  // The observer receives events on reactor threads until removed; done
  // once every reactor has it.
  void AddObserver(std::shared_ptr<ConnectionObserver> observer, StatusDone done);
  absl::Status AddObserver(std::shared_ptr<ConnectionObserver> observer);  // waits
  // Best effort (a gateway that has shut down holds no observers any more):
  // `done` runs once no reactor holds it.
  void RemoveObserver(const ConnectionObserver* observer, absl::AnyInvocable<void() &&> done);
  void RemoveObserver(const ConnectionObserver* observer);  // waits

  // --- Upstream mode (upstream_types.h): frames go to backends. Every call
  // is FAILED_PRECONDITION when the gateway did not start with backends
  // (--upstream), and the ones that change backends UNAVAILABLE once it is
  // shutting down. A backend is named by its address as given. ---
  bool upstream_enabled() const { return options_.upstream.enabled(); }
  // Every backend, sorted by address, with counters summed over reactors.
  // Any thread; does not wait for the reactors.
  absl::StatusOr<std::vector<BackendInfo>> ListBackends() const;
  absl::StatusOr<BackendInfo> GetBackend(absl::string_view address) const;  // NOT_FOUND
  // Adds a backend on every reactor; done once all have it. INVALID_ARGUMENT
  // for a bad address or weight, ALREADY_EXISTS for an address in use.
  void AddBackend(BackendSpec spec, Done<BackendInfo> done);
  // Stops sending it new requests (state draining) on every reactor; done
  // once none has a request in flight or queued for it (then it holds no
  // request), or DEADLINE_EXCEEDED after `timeout` (it stays draining).
  void DrainBackend(std::string address, absl::Duration timeout, Done<BackendInfo> done);
  // A drained backend takes requests again (healthy, or unhealthy/ejected
  // if that is what its probes last said).
  void UndrainBackend(std::string address, Done<BackendInfo> done);
  // Drains (the requests in flight finish, up to `timeout`; those left then
  // get the error response), then removes it from every reactor, closing its
  // upstream connections. `done` gets its last picture.
  void RemoveBackend(std::string address, absl::Duration timeout, Done<BackendInfo> done);
  // INVALID_ARGUMENT unless 1..1000.
  void SetBackendWeight(std::string address, uint32_t weight, Done<BackendInfo> done);
  // Waiting variants (at most `timeout` + 30 s).
  absl::StatusOr<BackendInfo> AddBackend(BackendSpec spec);
  absl::StatusOr<BackendInfo> DrainBackend(std::string address, absl::Duration timeout);
  absl::StatusOr<BackendInfo> UndrainBackend(std::string address);
  absl::StatusOr<BackendInfo> RemoveBackend(std::string address, absl::Duration timeout);
  absl::StatusOr<BackendInfo> SetBackendWeight(std::string address, uint32_t weight);
  // Backend events (added, removed, state and weight changes) until removed.
  absl::Status AddBackendObserver(std::shared_ptr<BackendObserver> observer);
  void RemoveBackendObserver(const BackendObserver* observer);

  // Lock-free counters for metrics; valid for the gateway's lifetime.
  const ReactorStats& reactor_stats(int index) const;
  int64_t active_connections() const { return shared_.active.load(std::memory_order_relaxed); }

  // Tests only: runs `task` on reactor `index`'s thread (which it may block,
  // to stand for a stalled reactor). False if the reactor no longer runs,
  // and always for the blocking model, which has no reactor.
  bool PostForTesting(int index, absl::AnyInvocable<void() &&> task);

 private:
  explicit Gateway(GatewayOptions options);
  class FanIn;
  // Proof of one reactor's reply to a fan-in: call it once the reactor's part
  // is done (at once, or later from a task of its own); dropping it uncalled
  // (a task discarded by a closed loop) counts as a reply from a reactor that
  // has shut down.
  class Reply {
   public:
    explicit Reply(std::shared_ptr<FanIn> fan_in);
    Reply(Reply&& other) noexcept = default;
    Reply& operator=(Reply&&) = delete;
    ~Reply();
    void operator()() &&;

   private:
    std::shared_ptr<FanIn> fan_in_;
  };
  // OK if the blocking model may be asked about connections: started, not
  // yet shut down.
  absl::Status BlockingReady() const;
  // Runs `fn(reactor, reply)` on every reactor's thread; `done` runs once
  // every reactor has replied (see the class comment for where, and which
  // errors).
  void RunOnAllReactors(absl::AnyInvocable<void(Reactor&, Reply)> fn, StatusDone done);
  // The same for work that is done when `fn` returns.
  void RunOnAllReactorsNow(absl::AnyInvocable<void(Reactor&)> fn, StatusDone done);
  // Starts the switch at the head of switch_queue_; FinishSwitch reports it
  // and starts the next.
  struct SwitchTarget {
    std::optional<TriggerMode> trigger_mode;  // else io_model
    IoModel io_model = IoModel::kEpoll;
  };
  void EnqueueSwitch(SwitchTarget target, StatusDone done);
  void StartSwitch(SwitchTarget target);
  void StartIoModelSwitch(IoModel model);
  void FinishSwitch(absl::Status status);
  // Upstream mode: applies `update` on every reactor.
  void BroadcastBackend(const BackendUpdate& update, StatusDone done);
  // An active probe's result (on the prober's thread).
  void OnProbeResult(const ProbeResult& result);
  // A reactor ejected a backend (on that reactor's thread).
  void OnBackendEjected(const std::string& address, std::string reason);
  // DrainBackend's and RemoveBackend's wait: `done(drained)` once no reactor
  // has work for `address`, or (false) at the deadline.
  void AwaitDrained(const std::string& address, absl::Duration timeout, absl::AnyInvocable<void(absl::Status) &&> done);

  GatewayOptions options_;
  FdBudget fd_budget_;
  int port_ = 0;
  SharedCounters shared_;
  std::vector<std::unique_ptr<Reactor>> reactors_;
  std::unique_ptr<BlockingServer> blocking_;    // instead of reactors_ for IoModel::kBlocking
  std::unique_ptr<UpstreamRegistry> upstream_;  // null unless upstream mode
  std::unique_ptr<UpstreamProber> prober_;      // null unless upstream mode with probes
  absl::Time started_at_;
  std::atomic<TriggerMode> mode_{TriggerMode::kEdge};
  std::atomic<uint64_t> switches_{0};
  std::atomic<IoModel> io_model_{IoModel::kEpoll};
  std::atomic<uint64_t> io_switches_{0};
  std::atomic<int64_t> last_io_switch_ns_{0};
  std::atomic<bool> running_{false};       // Start() has run: reactors answer posts
  std::atomic<bool> stopping_{false};      // Shutdown() has begun
  std::atomic<bool> draining_{false};      // AnnounceDrain() or Shutdown()
  std::atomic<uint32_t> next_adopter_{0};  // round robin for AdoptConnection

  // std::mutex, not absl::Mutex: see EventLoop (TSan visibility).
  std::mutex switch_mu_;
  struct PendingSwitch {
    SwitchTarget target;
    StatusDone done;
  };
  // The head runs; the rest wait their turn. Guarded by switch_mu_.
  std::deque<PendingSwitch> switch_queue_;
  std::mutex lifecycle_mu_;
  bool started_ = false;  // guarded by lifecycle_mu_
  bool stopped_ = false;  // guarded by lifecycle_mu_
};

}  // namespace gateway
