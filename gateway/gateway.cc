#include "gateway/gateway.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gateway/socket_util.h"

namespace gateway {
namespace {

// Replies from reactors are gathered here; the waiting thread and the
// reactors share it, so a late reply after a timeout writes into live memory.
struct FanIn {
  std::mutex mu;
  std::condition_variable done;
  int pending = 0;  // guarded by mu
};

constexpr std::chrono::seconds kReactorReplyTimeout{30};

absl::Status NotFound(int fd, uint64_t id) {
  if (id == 0) return absl::NotFoundError(absl::StrCat("no connection with fd ", fd));
  return absl::NotFoundError(absl::StrCat("no connection with fd ", fd, " and id ", id));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Create(GatewayOptions options) {
  if (absl::Status valid = Validate(options); !valid.ok()) return valid;
  if (options.reactors == 0) options.reactors = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!options.handler_factory) options.handler_factory = std::make_shared<ReverseHandlerFactory>();
  absl::StatusOr<SocketAddress> address = ParseListenAddress(options.listen_address);
  if (!address.ok()) return address.status();
  absl::StatusOr<std::vector<int>> fds = OpenReusePortListeners(*address, options.reactors, options.backlog);
  if (!fds.ok()) return fds.status();

  std::unique_ptr<Gateway> gateway(new Gateway(std::move(options)));
  gateway->fd_budget_ = CurrentFdBudget();
  if (gateway->options_.reactor.max_connections == 0) {
    gateway->options_.reactor.max_connections = gateway->fd_budget_.max_connections;
  }
  gateway->port_ = LocalPort(fds->front());
  gateway->mode_.store(gateway->options_.reactor.trigger_mode);
  for (int i = 0; i < gateway->options_.reactors; ++i) {
    gateway->reactors_.push_back(std::make_unique<Reactor>(i, (*fds)[i], gateway->options_.reactor, &gateway->shared_,
                                                           gateway->options_.handler_factory->Create()));
  }
  return gateway;
}

Gateway::~Gateway() { Shutdown(absl::ZeroDuration()); }

void Gateway::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (started_) return;
  started_ = true;
  started_at_ = absl::Now();
  for (auto& reactor : reactors_) reactor->Start();
  running_.store(true, std::memory_order_release);
}

void Gateway::Shutdown(absl::Duration drain_timeout) {
  std::lock_guard<std::mutex> lock(lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;  // reactors never ran; their destructors close the listeners
  const absl::Time deadline = absl::Now() + drain_timeout;
  for (auto& reactor : reactors_) {
    Reactor* r = reactor.get();
    r->Post([r, deadline] { r->BeginShutdown(deadline); });
  }
  for (auto& reactor : reactors_) reactor->Join();
}

absl::Status Gateway::RunOnAllReactorsDeferred(absl::AnyInvocable<void(Reactor&, ReactorDone)> fn) {
  if (!running_.load(std::memory_order_acquire)) {
    return absl::FailedPreconditionError("the gateway has not been started");
  }
  auto fan_in = std::make_shared<FanIn>();
  auto shared_fn = std::make_shared<absl::AnyInvocable<void(Reactor&, ReactorDone)>>(std::move(fn));
  int posted = 0;
  auto finish_one = [fan_in] {
    std::lock_guard<std::mutex> lock(fan_in->mu);
    if (--fan_in->pending == 0) fan_in->done.notify_all();
  };
  {
    std::lock_guard<std::mutex> lock(fan_in->mu);
    fan_in->pending = static_cast<int>(reactors_.size());
  }
  for (auto& reactor : reactors_) {
    Reactor* r = reactor.get();
    const bool ok = r->Post([r, shared_fn, finish_one] { (*shared_fn)(*r, ReactorDone(finish_one)); });
    if (ok) {
      ++posted;
    } else {
      finish_one();
    }
  }
  std::unique_lock<std::mutex> lock(fan_in->mu);
  if (!fan_in->done.wait_for(lock, kReactorReplyTimeout, [&] { return fan_in->pending == 0; })) {
    return absl::DeadlineExceededError("a reactor did not answer in time");
  }
  if (posted < static_cast<int>(reactors_.size())) return absl::UnavailableError("the gateway is shutting down");
  return absl::OkStatus();
}

absl::Status Gateway::RunOnAllReactors(absl::AnyInvocable<void(Reactor&)> fn) {
  return RunOnAllReactorsDeferred([fn = std::move(fn)](Reactor& r, ReactorDone done) mutable {
    fn(r);
    done();
  });
}

absl::Status Gateway::SetTriggerMode(TriggerMode mode) {
  std::lock_guard<std::mutex> lock(switch_mu_);
  const TriggerMode old_mode = mode_.load();
  absl::Status status = RunOnAllReactors([mode](Reactor& r) { r.SetTriggerMode(mode); });
  if (!status.ok()) return status;
  mode_.store(mode, std::memory_order_release);
  if (old_mode != mode) switches_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<ConnectionPage> Gateway::ListConnections(const ListQuery& query) {
  struct Reply {
    std::mutex mu;
    std::vector<ConnectionInfo> infos;
    size_t total = 0;
  };
  auto reply = std::make_shared<Reply>();
  // One more than a page from each reactor: if the merge has more than a
  // page, there is a next page, even when one reactor holds all of it.
  ListQuery per_reactor = query;
  if (query.limit > 0) per_reactor.limit = query.limit + 1;
  absl::Status status = RunOnAllReactorsDeferred([per_reactor, reply](Reactor& r, ReactorDone done) {
    r.ListConnections(per_reactor, [reply, done = std::move(done)](std::vector<ConnectionInfo> infos,
                                                                  size_t total) mutable {
      {
        std::lock_guard<std::mutex> lock(reply->mu);
        reply->total += total;
        std::move(infos.begin(), infos.end(), std::back_inserter(reply->infos));
      }
      done();
    });
  });
  if (!status.ok()) return status;
  std::lock_guard<std::mutex> lock(reply->mu);
  ConnectionPage page;
  page.total_matching = reply->total;
  page.connections = std::move(reply->infos);
  std::sort(page.connections.begin(), page.connections.end(),
            [](const ConnectionInfo& a, const ConnectionInfo& b) { return a.fd < b.fd; });
  if (query.limit > 0 && page.connections.size() > query.limit) {
    page.connections.resize(query.limit);
    page.next_after_fd = page.connections.back().fd;
  }
  return page;
}

absl::StatusOr<ConnectionInfo> Gateway::GetConnection(int fd, uint64_t id) {
  struct Reply {
    std::mutex mu;
    std::optional<ConnectionInfo> info;
  };
  auto reply = std::make_shared<Reply>();
  absl::Status status = RunOnAllReactors([fd, id, reply](Reactor& r) {
    std::optional<ConnectionInfo> info = r.GetConnection(fd, id);
    if (!info.has_value()) return;
    std::lock_guard<std::mutex> lock(reply->mu);
    reply->info = std::move(info);
  });
  if (!status.ok()) return status;
  std::lock_guard<std::mutex> lock(reply->mu);
  if (!reply->info.has_value()) return NotFound(fd, id);
  return *std::move(reply->info);
}

absl::Status Gateway::CloseConnection(int fd, uint64_t id, bool force) {
  auto found = std::make_shared<std::atomic<bool>>(false);
  absl::Status status = RunOnAllReactors([fd, id, force, found](Reactor& r) {
    if (r.CloseConnection(fd, id, force ? CloseMode::kForce : CloseMode::kFlush)) found->store(true);
  });
  if (!status.ok()) return status;
  if (!found->load()) return NotFound(fd, id);
  return absl::OkStatus();
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

absl::Status Gateway::AddObserver(std::shared_ptr<ConnectionObserver> observer) {
  return RunOnAllReactors([observer](Reactor& r) { r.AddObserver(observer); });
}

void Gateway::RemoveObserver(const ConnectionObserver* observer) {
  // Best effort: a gateway that has shut down holds no observers any more.
  (void)RunOnAllReactors([observer](Reactor& r) { r.RemoveObserver(observer); });
}

}  // namespace gateway
