#include "gateway/gateway.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gateway/blocking_server.h"
#include "gateway/event_loop.h"
#include "gateway/log.h"
#include "gateway/poller.h"
#include "gateway/reactor.h"
#include "gateway/socket_util.h"
#include "gateway/sync_wait.h"
#include "gateway/upstream_prober.h"
#include "gateway/upstream_registry.h"

namespace gateway {
namespace {

absl::Status NotFound(int fd, uint64_t id) {
  if (id == 0) return absl::NotFoundError(absl::StrCat("no connection with fd ", fd));
  return absl::NotFoundError(absl::StrCat("no connection with fd ", fd, " and id ", id));
}

absl::Status NotStarted() { return absl::FailedPreconditionError("the gateway has not been started"); }

// Sorts what the reactors gave (each up to a page plus one) by fd and cuts a
// page: if more than a page is left, there is a next page.
ConnectionPage MakePage(std::vector<ConnectionInfo> infos, size_t total, size_t limit) {
  ConnectionPage page;
  page.total_matching = total;
  page.connections = std::move(infos);
  std::sort(page.connections.begin(), page.connections.end(),
            [](const ConnectionInfo& a, const ConnectionInfo& b) { return a.fd < b.fd; });
  if (limit > 0 && page.connections.size() > limit) {
    page.connections.resize(limit);
    page.next_after_fd = page.connections.back().fd;
  }
  return page;
}

}  // namespace

// The state of one fan-in, shared by the caller's `done` and every reactor's
// Reply: the last reply runs `done`, wherever it comes from.
class Gateway::FanIn {
 public:
  FanIn(int replies, StatusDone done) : pending_(replies), done_(std::move(done)) {}

  void Replied(bool answered) {
    if (!answered) lost_.store(true, std::memory_order_relaxed);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    std::move(done_)(lost_.load(std::memory_order_relaxed) ? absl::UnavailableError("the gateway is shutting down")
                                                           : absl::OkStatus());
  }

 private:
  std::atomic<int> pending_;
  std::atomic<bool> lost_{false};
  StatusDone done_;  // run by the last reply only
};

Gateway::Reply::Reply(std::shared_ptr<FanIn> fan_in) : fan_in_(std::move(fan_in)) {}

Gateway::Reply::~Reply() {
  if (fan_in_ != nullptr) fan_in_->Replied(false);
}

void Gateway::Reply::operator()() && {
  std::shared_ptr<FanIn> fan_in = std::move(fan_in_);
  fan_in->Replied(true);
}

Gateway::Gateway(GatewayOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options) {
  absl::StatusOr<SocketAddress> address = Validate(options);
  if (!address.ok()) return address.status();
  if (options.reactors == 0) options.reactors = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!options.handler_factory) options.handler_factory = std::make_shared<ReverseHandlerFactory>();
  // The blocking model has no reactors: one listener, one acceptor thread.
  const bool blocking = options.reactor.io_model == IoModel::kBlocking;
  if (blocking) options.reactors = 1;
  // A back-end this host refuses (io_uring under a seccomp profile) fails
  // here, at start, rather than in a reactor thread.
  if (absl::Status probe = ProbeIoModel(options.reactor.io_model); !probe.ok()) return probe;
  absl::StatusOr<std::vector<int>> fds = OpenReusePortListeners(*address, options.reactors, options.backlog);
  if (!fds.ok()) return fds.status();

  std::unique_ptr<Gateway> gateway(new Gateway(std::move(options)));
  gateway->fd_budget_ = CurrentFdBudget();
  if (gateway->options_.reactor.max_connections == 0) {
    gateway->options_.reactor.max_connections = gateway->fd_budget_.max_connections;
  }
  gateway->port_ = LocalPort(fds->front());
  gateway->mode_.store(gateway->options_.reactor.trigger_mode);
  gateway->io_model_.store(gateway->options_.reactor.io_model);
  if (blocking) {
    gateway->blocking_ = std::make_unique<BlockingServer>(fds->front(), gateway->options_.reactor, &gateway->shared_,
                                                          gateway->options_.handler_factory);
    return gateway;
  }
  const UpstreamOptions& upstream = gateway->options_.upstream;
  if (upstream.enabled()) {
    gateway->upstream_ = std::make_unique<UpstreamRegistry>(upstream, gateway->options_.reactors);
    for (const BackendSpec& spec : upstream.backends) {
      if (absl::StatusOr<BackendUpdate> added = gateway->upstream_->Add(spec); !added.ok()) {
        for (int fd : *fds) close(fd);
        return added.status();
      }
    }
    if (upstream.probe_interval > absl::ZeroDuration()) {
      Gateway* gw = gateway.get();
      gateway->prober_ = std::make_unique<UpstreamProber>(
          upstream.probe_interval, std::min(upstream.probe_interval, upstream.timeout), upstream.probe_payload,
          [gw](const ProbeResult& result) { gw->OnProbeResult(result); });
      for (const BackendSpec& spec : upstream.backends) gateway->prober_->AddTarget(spec.address);
    }
  }
  Gateway* self = gateway.get();
  for (int i = 0; i < gateway->options_.reactors; ++i) {
    gateway->reactors_.push_back(std::make_unique<Reactor>(i, (*fds)[i], gateway->options_.reactor, &gateway->shared_,
                                                           gateway->options_.handler_factory->Create(), upstream,
                                                           [self](const std::string& address, std::string reason) {
                                                             self->OnBackendEjected(address, std::move(reason));
                                                           }));
    if (gateway->upstream_ != nullptr) {
      // Before the reactor's thread starts: no other thread touches its pool yet.
      for (const BackendUpdate& update : gateway->upstream_->AllUpdates()) {
        gateway->reactors_.back()->upstream()->Update(update);
      }
    }
  }
  return gateway;
}

Gateway::~Gateway() {
  Shutdown(absl::ZeroDuration());
  prober_.reset();  // joins its thread while the registry it reports to still exists
}

void Gateway::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_) return;
  started_ = true;
  started_at_ = absl::Now();
  if (blocking_ != nullptr) {
    if (absl::Status status = blocking_->Start(); !status.ok()) Die(status.message());
  }
  for (auto& reactor : reactors_) reactor->Start();
  running_.store(true, std::memory_order_release);
  if (prober_ != nullptr) prober_->Start();
}

void Gateway::Shutdown(absl::Duration drain_timeout, absl::Duration spread) {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  AnnounceDrain();
  stopping_.store(true, std::memory_order_release);
  if (!started_) return;  // reactors never ran; their destructors close the listeners
  if (blocking_ != nullptr) blocking_->Shutdown(drain_timeout);
  const absl::Time deadline = absl::Now() + drain_timeout;
  for (auto& reactor : reactors_) {
    Reactor* r = reactor.get();
    r->Post([r, deadline, spread] { r->BeginShutdown(deadline, spread); });
  }
  for (auto& reactor : reactors_) reactor->Join();
}

const ReactorStats& Gateway::reactor_stats(int index) const {
  return blocking_ != nullptr ? blocking_->stats() : reactors_[index]->stats();
}

bool Gateway::PostForTesting(int index, absl::AnyInvocable<void() &&> task) {
  if (blocking_ != nullptr) return false;
  return reactors_[index]->Post(std::move(task));
}

absl::Status Gateway::BlockingReady() const {
  if (!running_.load(std::memory_order_acquire)) return NotStarted();
  // What a reactor that has shut down answers.
  if (blocking_->stopped()) return absl::UnavailableError("the gateway is shutting down");
  return absl::OkStatus();
}

void Gateway::RunOnAllReactors(absl::AnyInvocable<void(Reactor&, Reply)> fn, StatusDone done) {
  if (!running_.load(std::memory_order_acquire)) {
    std::move(done)(NotStarted());
    return;
  }
  auto fan_in = std::make_shared<FanIn>(static_cast<int>(reactors_.size()), std::move(done));
  auto shared_fn = std::make_shared<absl::AnyInvocable<void(Reactor&, Reply)>>(std::move(fn));
  for (auto& reactor : reactors_) {
    Reactor* r = reactor.get();
    // A refused post drops the task, and with it the Reply: counted as lost.
    (void)r->Post([r, shared_fn, reply = Reply(fan_in)]() mutable { (*shared_fn)(*r, std::move(reply)); });
  }
}

void Gateway::RunOnAllReactorsNow(absl::AnyInvocable<void(Reactor&)> fn, StatusDone done) {
  RunOnAllReactors(
      [fn = std::move(fn)](Reactor& r, Reply reply) mutable {
        fn(r);
        std::move(reply)();
      },
      std::move(done));
}

void Gateway::SetTriggerMode(TriggerMode mode, StatusDone done) { EnqueueSwitch(SwitchTarget{mode}, std::move(done)); }

void Gateway::SetIoModel(IoModel model, StatusDone done) {
  EnqueueSwitch(SwitchTarget{std::nullopt, model}, std::move(done));
}

void Gateway::EnqueueSwitch(SwitchTarget target, StatusDone done) {
  {
    std::lock_guard<std::mutex> lock(switch_mu_);
    switch_queue_.push_back(PendingSwitch{target, std::move(done)});
    if (switch_queue_.size() > 1) return;  // the running switch starts it when done
  }
  StartSwitch(target);
}

void Gateway::StartSwitch(SwitchTarget target) {
  if (stopping_.load(std::memory_order_acquire)) {
    FinishSwitch(absl::UnavailableError("the gateway is shutting down"));
    return;
  }
  if (!target.trigger_mode.has_value()) {
    StartIoModelSwitch(target.io_model);
    return;
  }
  // Only the head of the queue runs, so mode_ changes in order.
  const TriggerMode mode = *target.trigger_mode;
  const IoModel model = io_model();
  if (model != IoModel::kEpoll) {
    FinishSwitch(absl::FailedPreconditionError(absl::StrCat("the trigger mode applies to epoll; the gateway runs ",
                                                            IoModelName(model), " (SetIoModel to epoll first)")));
    return;
  }
  const TriggerMode old_mode = mode_.load();
  RunOnAllReactorsNow([mode](Reactor& r) { r.SetTriggerMode(mode); },
                      [this, mode, old_mode](absl::Status status) {
                        if (status.ok()) {
                          mode_.store(mode, std::memory_order_release);
                          if (old_mode != mode) switches_.fetch_add(1, std::memory_order_relaxed);
                        }
                        FinishSwitch(std::move(status));
                      });
}

void Gateway::StartIoModelSwitch(IoModel model) {
  const IoModel old_model = io_model();
  if (!IsLiveSwitchable(old_model)) {
    FinishSwitch(absl::FailedPreconditionError(
        absl::StrCat("the gateway runs the ", IoModelName(old_model),
                     " model, which is chosen at start only: restart with --io_model=", IoModelName(model))));
    return;
  }
  if (!IsLiveSwitchable(model)) {
    FinishSwitch(absl::FailedPreconditionError(absl::StrCat(
        "the ", IoModelName(model), " model is chosen at start only: restart with --io_model=", IoModelName(model))));
    return;
  }
  if (model == old_model) {
    FinishSwitch(absl::OkStatus());
    return;
  }
  if (absl::Status probe = ProbeIoModel(model); !probe.ok()) {
    FinishSwitch(std::move(probe));
    return;
  }
  // Each reactor moves on its own thread; if one refuses (select: a
  // connection on a high fd arrived meanwhile), the others move back.
  struct Outcome {
    std::mutex mu;
    absl::Status first_error;  // guarded by mu
  };
  auto outcome = std::make_shared<Outcome>();
  auto record = [outcome](absl::Status status) {
    std::lock_guard<std::mutex> lock(outcome->mu);
    if (outcome->first_error.ok()) outcome->first_error = std::move(status);
  };
  auto move_all = [this, model, old_model, outcome, record](int64_t started_ns) mutable {
    RunOnAllReactorsNow([model, record](Reactor& r) mutable { record(r.SetIoModel(model)); },
                        [this, model, old_model, outcome, started_ns](absl::Status status) {
                          if (status.ok()) {
                            std::lock_guard<std::mutex> lock(outcome->mu);
                            status = outcome->first_error;
                          }
                          if (status.ok()) {
                            io_model_.store(model, std::memory_order_release);
                            io_switches_.fetch_add(1, std::memory_order_relaxed);
                            last_io_switch_ns_.store(MonotonicNowNs() - started_ns, std::memory_order_relaxed);
                            FinishSwitch(absl::OkStatus());
                            return;
                          }
                          // Back to where every reactor was.
                          RunOnAllReactorsNow([old_model](Reactor& r) { (void)r.SetIoModel(old_model); },
                                              [this, status](absl::Status) { FinishSwitch(status); });
                        });
  };
  if (model != IoModel::kSelect) {
    move_all(MonotonicNowNs());
    return;
  }
  // select: refused while any connection sits on an fd it cannot watch.
  auto over = std::make_shared<std::atomic<int64_t>>(0);
  RunOnAllReactorsNow([over](Reactor& r) { over->fetch_add(r.CountFdsOverSelectLimit()); },
                      [this, over, move_all](absl::Status status) mutable {
                        if (status.ok() && over->load() > 0) {
                          status = absl::FailedPreconditionError(
                              absl::StrCat(over->load(),
                                           " connection(s) are on fds >= FD_SETSIZE (1024), which select(2) "
                                           "cannot watch; close them or choose poll, epoll or io_uring"));
                        }
                        if (!status.ok()) {
                          FinishSwitch(std::move(status));
                          return;
                        }
                        move_all(MonotonicNowNs());
                      });
}

void Gateway::FinishSwitch(absl::Status status) {
  StatusDone done;
  std::optional<SwitchTarget> next;
  {
    std::lock_guard<std::mutex> lock(switch_mu_);
    done = std::move(switch_queue_.front().done);
    switch_queue_.pop_front();
    if (!switch_queue_.empty()) next = switch_queue_.front().target;
  }
  std::move(done)(std::move(status));
  if (next.has_value()) StartSwitch(*next);
}

void Gateway::ListConnections(const ListQuery& query, Done<ConnectionPage> done) {
  struct Gathered {
    std::mutex mu;
    std::vector<ConnectionInfo> infos;  // guarded by mu
    size_t total = 0;                   // guarded by mu
  };
  auto gathered = std::make_shared<Gathered>();
  // One more than a page from each reactor: if the merge has more than a
  // page, there is a next page, even when one reactor holds all of it.
  ListQuery per_reactor = query;
  if (query.limit > 0) per_reactor.limit = query.limit + 1;
  if (blocking_ != nullptr) {
    if (absl::Status ready = BlockingReady(); !ready.ok()) return std::move(done)(std::move(ready));
    std::vector<ConnectionInfo> infos;
    size_t total = 0;
    blocking_->ListConnections(per_reactor, &infos, &total);
    return std::move(done)(MakePage(std::move(infos), total, query.limit));
  }
  RunOnAllReactors(
      [per_reactor, gathered](Reactor& r, Reply reply) {
        r.ListConnections(
            per_reactor, [gathered, reply = std::move(reply)](std::vector<ConnectionInfo> infos, size_t total) mutable {
              {
                std::lock_guard<std::mutex> lock(gathered->mu);
                gathered->total += total;
                std::move(infos.begin(), infos.end(), std::back_inserter(gathered->infos));
              }
              std::move(reply)();
            });
      },
      [limit = query.limit, gathered, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          std::move(done)(std::move(status));
          return;
        }
        std::vector<ConnectionInfo> infos;
        size_t total = 0;
        {
          std::lock_guard<std::mutex> lock(gathered->mu);
          total = gathered->total;
          infos = std::move(gathered->infos);
        }
        std::move(done)(MakePage(std::move(infos), total, limit));
      });
}

void Gateway::GetConnection(int fd, uint64_t id, Done<ConnectionInfo> done) {
  if (blocking_ != nullptr) {
    if (absl::Status ready = BlockingReady(); !ready.ok()) return std::move(done)(std::move(ready));
    std::optional<ConnectionInfo> info = blocking_->GetConnection(fd, id);
    if (!info.has_value()) return std::move(done)(NotFound(fd, id));
    return std::move(done)(*std::move(info));
  }
  struct Found {
    std::mutex mu;
    std::optional<ConnectionInfo> info;  // guarded by mu
  };
  auto found = std::make_shared<Found>();
  RunOnAllReactorsNow(
      [fd, id, found](Reactor& r) {
        std::optional<ConnectionInfo> info = r.GetConnection(fd, id);
        if (!info.has_value()) return;
        std::lock_guard<std::mutex> lock(found->mu);
        found->info = std::move(info);
      },
      [fd, id, found, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) {
          std::move(done)(std::move(status));
          return;
        }
        std::optional<ConnectionInfo> info;
        {
          std::lock_guard<std::mutex> lock(found->mu);
          info = std::move(found->info);
        }
        if (!info.has_value()) {
          std::move(done)(NotFound(fd, id));
          return;
        }
        std::move(done)(*std::move(info));
      });
}

void Gateway::CloseConnection(int fd, uint64_t id, CloseMode mode, StatusDone done) {
  if (blocking_ != nullptr) {
    if (absl::Status ready = BlockingReady(); !ready.ok()) return std::move(done)(std::move(ready));
    return std::move(done)(blocking_->CloseConnection(fd, id, mode) ? absl::OkStatus() : NotFound(fd, id));
  }
  auto found = std::make_shared<std::atomic<bool>>(false);
  RunOnAllReactorsNow(
      [fd, id, mode, found](Reactor& r) {
        if (r.CloseConnection(fd, id, mode)) found->store(true);
      },
      [fd, id, found, done = std::move(done)](absl::Status status) mutable {
        if (status.ok() && !found->load()) status = NotFound(fd, id);
        std::move(done)(std::move(status));
      });
}

absl::Status Gateway::SetTriggerMode(TriggerMode mode) {
  return WaitFor<absl::Status>([&](StatusDone done) { SetTriggerMode(mode, std::move(done)); });
}

absl::Status Gateway::ProbeIoModel(IoModel model) { return ::gateway::ProbeIoModel(model); }

absl::Status Gateway::SetIoModel(IoModel model) {
  return WaitFor<absl::Status>([&](StatusDone done) { SetIoModel(model, std::move(done)); });
}

absl::StatusOr<ConnectionPage> Gateway::ListConnections(const ListQuery& query) {
  return WaitFor<absl::StatusOr<ConnectionPage>>(
      [&](Done<ConnectionPage> done) { ListConnections(query, std::move(done)); });
}

absl::StatusOr<ConnectionInfo> Gateway::GetConnection(int fd, uint64_t id) {
  return WaitFor<absl::StatusOr<ConnectionInfo>>(
      [&](Done<ConnectionInfo> done) { GetConnection(fd, id, std::move(done)); });
}

absl::Status Gateway::CloseConnection(int fd, uint64_t id, CloseMode mode) {
  return WaitFor<absl::Status>([&](StatusDone done) { CloseConnection(fd, id, mode, std::move(done)); });
}

absl::Status Gateway::AdoptConnection(int fd) {
  if (!running_.load(std::memory_order_acquire)) {
    close(fd);
    return absl::FailedPreconditionError("the gateway has not been started");
  }
  SocketAddress peer{};
  socklen_t len = sizeof peer;
  if (getpeername(fd, &peer.sa, &len) != 0) {
    const int err = errno;
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("fd ", fd, " is not a connected socket: ", std::strerror(err)));
  }
  if (blocking_ != nullptr) return blocking_->Adopt(fd, peer);
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat("fd ", fd, " cannot be made non-blocking"));
  }
  Reactor* r = reactors_[next_adopter_.fetch_add(1, std::memory_order_relaxed) % reactors_.size()].get();
  if (!r->Post([r, fd, peer] { r->Adopt(fd, peer); })) {
    close(fd);
    return absl::UnavailableError("the gateway is shutting down");
  }
  return absl::OkStatus();
}

void Gateway::AddObserver(std::shared_ptr<ConnectionObserver> observer, StatusDone done) {
  if (blocking_ != nullptr) {
    if (absl::Status ready = BlockingReady(); !ready.ok()) return std::move(done)(std::move(ready));
    blocking_->AddObserver(std::move(observer));
    return std::move(done)(absl::OkStatus());
  }
  RunOnAllReactorsNow([observer = std::move(observer)](Reactor& r) { r.AddObserver(observer); }, std::move(done));
}

absl::Status Gateway::AddObserver(std::shared_ptr<ConnectionObserver> observer) {
  return WaitFor<absl::Status>([&](StatusDone done) { AddObserver(std::move(observer), std::move(done)); });
}

void Gateway::RemoveObserver(const ConnectionObserver* observer, absl::AnyInvocable<void() &&> done) {
  if (blocking_ != nullptr) {
    blocking_->RemoveObserver(observer);
    return std::move(done)();
  }
  RunOnAllReactorsNow([observer](Reactor& r) { r.RemoveObserver(observer); },
                      [done = std::move(done)](absl::Status) mutable { std::move(done)(); });
}

void Gateway::RemoveObserver(const ConnectionObserver* observer) {
  (void)WaitFor<absl::Status>([&](StatusDone done) {
    RemoveObserver(observer, [done = std::move(done)]() mutable { std::move(done)(absl::OkStatus()); });
  });
}

}  // namespace gateway
