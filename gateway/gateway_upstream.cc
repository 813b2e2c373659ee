// The Gateway facade's upstream-mode calls: backends added, drained,
// removed and re-weighted on every reactor, and their pictures.
#include <atomic>

#include "gateway/gateway.h"
#include "gateway/reactor.h"
#include "gateway/sync_wait.h"
#include "gateway/upstream_prober.h"
#include "gateway/upstream_registry.h"

namespace gateway {
namespace {

absl::Status NotUpstream() {
  return absl::FailedPreconditionError("the gateway is not in upstream mode (start it with --upstream)");
}

}  // namespace

void Gateway::BroadcastBackend(const BackendUpdate& update, StatusDone done) {
  RunOnAllReactorsNow([update](Reactor& reactor) { reactor.upstream()->Update(update); }, std::move(done));
}

void Gateway::OnProbeResult(const ProbeResult& result) {
  if (std::optional<BackendUpdate> update = upstream_->OnProbe(result); update.has_value()) {
    BroadcastBackend(*update, [](absl::Status) {});
  }
}

void Gateway::OnBackendEjected(const std::string& address, std::string reason) {
  if (std::optional<BackendUpdate> update = upstream_->Eject(address, std::move(reason)); update.has_value()) {
    BroadcastBackend(*update, [](absl::Status) {});
  }
}

void Gateway::AwaitDrained(const std::string& address, absl::Duration timeout,
                           absl::AnyInvocable<void(absl::Status) &&> done) {
  auto drained = std::make_shared<std::atomic<bool>>(true);
  const int64_t timeout_ns = absl::ToInt64Nanoseconds(std::min(timeout, absl::Hours(24)));
  RunOnAllReactors(
      [address, drained, timeout_ns](Reactor& reactor, Reply reply) {
        UpstreamPool* pool = reactor.upstream();
        pool->WhenDrained(address, pool->loop()->now_ns() + timeout_ns,
                          [drained, reply = std::move(reply)](bool ok) mutable {
                            if (!ok) drained->store(false, std::memory_order_relaxed);
                            std::move(reply)();
                          });
      },
      [address, drained, done = std::move(done)](absl::Status status) mutable {
        if (status.ok() && !drained->load(std::memory_order_relaxed)) {
          status = absl::DeadlineExceededError(
              absl::StrCat("backend ", address, " still had requests in flight at the deadline"));
        }
        std::move(done)(status);
      });
}

absl::StatusOr<std::vector<BackendInfo>> Gateway::ListBackends() const {
  if (!upstream_enabled()) return NotUpstream();
  return upstream_->List();
}

absl::StatusOr<BackendInfo> Gateway::GetBackend(absl::string_view address) const {
  if (!upstream_enabled()) return NotUpstream();
  return upstream_->Get(address);
}

void Gateway::AddBackend(BackendSpec spec, Done<BackendInfo> done) {
  if (!upstream_enabled()) return std::move(done)(NotUpstream());
  if (stopping_.load(std::memory_order_acquire)) {
    return std::move(done)(absl::UnavailableError("the gateway is shutting down"));
  }
  absl::StatusOr<BackendUpdate> update = upstream_->Add(spec);
  if (!update.ok()) return std::move(done)(update.status());
  if (prober_ != nullptr) prober_->AddTarget(spec.address);
  BroadcastBackend(*update, [this, address = spec.address, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    std::move(done)(upstream_->Get(address));
  });
}

void Gateway::DrainBackend(std::string address, absl::Duration timeout, Done<BackendInfo> done) {
  if (!upstream_enabled()) return std::move(done)(NotUpstream());
  if (stopping_.load(std::memory_order_acquire)) {
    return std::move(done)(absl::UnavailableError("the gateway is shutting down"));
  }
  absl::StatusOr<BackendUpdate> update = upstream_->SetDraining(address, true);
  if (!update.ok()) return std::move(done)(update.status());
  BroadcastBackend(*update, [this, address, timeout, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    AwaitDrained(address, timeout, [this, address, done = std::move(done)](absl::Status status) mutable {
      if (!status.ok()) return std::move(done)(status);
      std::move(done)(upstream_->Get(address));
    });
  });
}

void Gateway::UndrainBackend(std::string address, Done<BackendInfo> done) {
  if (!upstream_enabled()) return std::move(done)(NotUpstream());
  if (stopping_.load(std::memory_order_acquire)) {
    return std::move(done)(absl::UnavailableError("the gateway is shutting down"));
  }
  absl::StatusOr<BackendUpdate> update = upstream_->SetDraining(address, false);
  if (!update.ok()) return std::move(done)(update.status());
  BroadcastBackend(*update, [this, address, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    std::move(done)(upstream_->Get(address));
  });
}

void Gateway::RemoveBackend(std::string address, absl::Duration timeout, Done<BackendInfo> done) {
  if (!upstream_enabled()) return std::move(done)(NotUpstream());
  if (stopping_.load(std::memory_order_acquire)) {
    return std::move(done)(absl::UnavailableError("the gateway is shutting down"));
  }
  absl::StatusOr<BackendUpdate> update = upstream_->MarkRemoving(address);
  if (!update.ok()) return std::move(done)(update.status());
  BroadcastBackend(*update, [this, address, timeout, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    // In-flight requests finish first; what is left at the deadline gets
    // the error response when the reactors drop the backend.
    AwaitDrained(address, timeout, [this, address, done = std::move(done)](absl::Status) mutable {
      RunOnAllReactorsNow([address](Reactor& reactor) { reactor.upstream()->Remove(address); },
                          [this, address, done = std::move(done)](absl::Status status) mutable {
                            if (prober_ != nullptr) prober_->RemoveTarget(address);
                            std::optional<BackendInfo> last = upstream_->Erase(address);
                            if (!status.ok()) return std::move(done)(status);
                            if (!last.has_value()) {
                              return std::move(done)(absl::NotFoundError(absl::StrCat("no backend ", address)));
                            }
                            std::move(done)(*std::move(last));
                          });
    });
  });
}

void Gateway::SetBackendWeight(std::string address, uint32_t weight, Done<BackendInfo> done) {
  if (!upstream_enabled()) return std::move(done)(NotUpstream());
  if (stopping_.load(std::memory_order_acquire)) {
    return std::move(done)(absl::UnavailableError("the gateway is shutting down"));
  }
  absl::StatusOr<BackendUpdate> update = upstream_->SetWeight(address, weight);
  if (!update.ok()) return std::move(done)(update.status());
  BroadcastBackend(*update, [this, address, done = std::move(done)](absl::Status status) mutable {
    if (!status.ok()) return std::move(done)(status);
    std::move(done)(upstream_->Get(address));
  });
}

absl::StatusOr<BackendInfo> Gateway::AddBackend(BackendSpec spec) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { AddBackend(std::move(spec), std::move(done)); });
}

absl::StatusOr<BackendInfo> Gateway::DrainBackend(std::string address, absl::Duration timeout) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { DrainBackend(std::move(address), timeout, std::move(done)); },
      timeout + kReactorReplyTimeout);
}

absl::StatusOr<BackendInfo> Gateway::UndrainBackend(std::string address) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { UndrainBackend(std::move(address), std::move(done)); });
}

absl::StatusOr<BackendInfo> Gateway::RemoveBackend(std::string address, absl::Duration timeout) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { RemoveBackend(std::move(address), timeout, std::move(done)); },
      timeout + kReactorReplyTimeout);
}

absl::StatusOr<BackendInfo> Gateway::SetBackendWeight(std::string address, uint32_t weight) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { SetBackendWeight(std::move(address), weight, std::move(done)); });
}

absl::Status Gateway::AddBackendObserver(std::shared_ptr<BackendObserver> observer) {
  if (!upstream_enabled()) return NotUpstream();
  upstream_->AddObserver(std::move(observer));
  return absl::OkStatus();
}

void Gateway::RemoveBackendObserver(const BackendObserver* observer) {
  if (upstream_ != nullptr) upstream_->RemoveObserver(observer);
}

}  // namespace gateway
