#include "gateway/upstream_registry.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace gateway {
namespace {

constexpr absl::Duration kMaxEjection = absl::Seconds(30);
constexpr uint32_t kMaxWeight = 1000;

bool SameAddress(const SocketAddress& a, const SocketAddress& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

absl::StatusOr<SocketAddress> ResolveBackend(absl::string_view address) {
  absl::StatusOr<BackendSpec> spec = ParseBackendSpec(address);
  if (!spec.ok()) return spec.status();
  const size_t colon = address.rfind(':');
  absl::string_view host = address.substr(0, colon);
  const std::string port(address.substr(colon + 1));
  absl::ConsumePrefix(&host, "[");
  absl::ConsumeSuffix(&host, "]");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* result = nullptr;
  const std::string host_text(host);
  if (const int rc = getaddrinfo(host_text.c_str(), port.c_str(), &hints, &result); rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("backend \"", address, "\": cannot resolve \"", host_text, "\": ", gai_strerror(rc)));
  }
  SocketAddress resolved{};
  for (const addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) {
      std::memcpy(&resolved, ai->ai_addr, std::min<size_t>(ai->ai_addrlen, sizeof resolved));
      break;
    }
  }
  freeaddrinfo(result);
  if (resolved.sa.sa_family == 0) {
    return absl::InvalidArgumentError(absl::StrCat("backend \"", address, "\": no IPv4 or IPv6 address"));
  }
  return resolved;
}

UpstreamRegistry::UpstreamRegistry(const UpstreamOptions& options, int reactors)
    : options_(options), reactors_(reactors) {}

BackendState UpstreamRegistry::StateOf(const Entry& entry) {
  if (entry.draining || entry.removing) return BackendState::kDraining;
  if (entry.ejected) return BackendState::kEjected;
  if (entry.probe_down) return BackendState::kUnhealthy;
  return BackendState::kHealthy;
}

BackendUpdate UpstreamRegistry::CurrentUpdate(const Entry& entry) {
  BackendUpdate update;
  update.address = entry.spec.address;
  update.resolved = entry.resolved;
  update.weight = entry.spec.weight;
  update.eligible = StateOf(entry) == BackendState::kHealthy;
  update.stats = entry.stats;
  update.version = entry.version;
  return update;
}

BackendUpdate UpstreamRegistry::UpdateOf(Entry& entry) {
  ++entry.version;
  return CurrentUpdate(entry);
}

BackendInfo UpstreamRegistry::InfoOf(const Entry& entry) const {
  BackendInfo info;
  info.address = entry.spec.address;
  info.weight = entry.spec.weight;
  info.state = StateOf(entry);
  info.ejections = entry.ejections;
  info.probes_ok = entry.probes_ok;
  info.probes_failed = entry.probes_failed;
  info.last_error = entry.last_error;
  info.added_at = entry.added_at;
  entry.stats->SumInto(&info);
  return info;
}

void UpstreamRegistry::Emit(BackendEvent::Type type, const Entry& entry, BackendState old_state, std::string reason) {
  if (observers_.empty()) return;
  BackendEvent event;
  event.type = type;
  event.time = absl::Now();
  event.backend = InfoOf(entry);
  event.old_state = old_state;
  event.reason = std::move(reason);
  for (const auto& observer : observers_) observer->OnBackendEvent(event);
}

UpstreamRegistry::Entry* UpstreamRegistry::Find(absl::string_view address) {
  auto it = entries_.find(address);
  return it == entries_.end() ? nullptr : &it->second;
}

absl::StatusOr<BackendUpdate> UpstreamRegistry::Add(const BackendSpec& spec) {
  if (spec.weight == 0 || spec.weight > kMaxWeight) {
    return absl::InvalidArgumentError(absl::StrCat("the weight must be 1..", kMaxWeight, ", not ", spec.weight));
  }
  absl::StatusOr<BackendSpec> parsed = ParseBackendSpec(spec.address);
  if (!parsed.ok()) return parsed.status();
  if (parsed->address != spec.address) {
    return absl::InvalidArgumentError(absl::StrCat("backend \"", spec.address, "\": expected host:port"));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (entries_.count(spec.address) != 0) {
      return absl::AlreadyExistsError(absl::StrCat("backend ", spec.address, " already exists"));
    }
  }
  // Resolved outside the lock: a name may take a while.
  absl::StatusOr<SocketAddress> resolved = ResolveBackend(spec.address);
  if (!resolved.ok()) return resolved.status();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = entries_.try_emplace(spec.address);
  if (!inserted) return absl::AlreadyExistsError(absl::StrCat("backend ", spec.address, " already exists"));
  Entry& entry = it->second;
  entry.spec = spec;
  entry.resolved = *resolved;
  entry.stats = std::make_shared<BackendStats>(reactors_);
  entry.added_at = absl::Now();
  Emit(BackendEvent::Type::kAdded, entry, BackendState::kHealthy, "added");
  return UpdateOf(entry);
}

absl::StatusOr<BackendUpdate> UpstreamRegistry::SetDraining(absl::string_view address, bool draining) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry* entry = Find(address);
  if (entry == nullptr || entry->removing) return absl::NotFoundError(absl::StrCat("no backend ", address));
  const BackendState old_state = StateOf(*entry);
  entry->draining = draining;
  if (StateOf(*entry) != old_state) {
    Emit(BackendEvent::Type::kStateChanged, *entry, old_state,
         draining ? "drained by an operator" : "undrained by an operator");
  }
  return UpdateOf(*entry);
}

absl::StatusOr<BackendUpdate> UpstreamRegistry::SetWeight(absl::string_view address, uint32_t weight) {
  if (weight == 0 || weight > kMaxWeight) {
    return absl::InvalidArgumentError(absl::StrCat("the weight must be 1..", kMaxWeight, ", not ", weight));
  }
  std::lock_guard<std::mutex> lock(mu_);
  Entry* entry = Find(address);
  if (entry == nullptr || entry->removing) return absl::NotFoundError(absl::StrCat("no backend ", address));
  if (entry->spec.weight != weight) {
    entry->spec.weight = weight;
    Emit(BackendEvent::Type::kWeightChanged, *entry, StateOf(*entry), absl::StrCat("weight set to ", weight));
  }
  return UpdateOf(*entry);
}

absl::StatusOr<BackendUpdate> UpstreamRegistry::MarkRemoving(absl::string_view address) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry* entry = Find(address);
  if (entry == nullptr || entry->removing) return absl::NotFoundError(absl::StrCat("no backend ", address));
  const BackendState old_state = StateOf(*entry);
  entry->removing = true;
  if (old_state != BackendState::kDraining) {
    Emit(BackendEvent::Type::kStateChanged, *entry, old_state, "being removed: draining");
  }
  return UpdateOf(*entry);
}

std::optional<BackendInfo> UpstreamRegistry::Erase(absl::string_view address) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return std::nullopt;
  BackendInfo info = InfoOf(it->second);
  Emit(BackendEvent::Type::kRemoved, it->second, StateOf(it->second), "removed by an operator");
  entries_.erase(it);
  return info;
}

std::optional<BackendUpdate> UpstreamRegistry::Eject(absl::string_view address, std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  Entry* entry = Find(address);
  if (entry == nullptr || entry->ejected) return std::nullopt;
  const BackendState old_state = StateOf(*entry);
  entry->ejected = true;
  ++entry->ejections;
  // Back-off doubles with each ejection: a flapping backend stays out longer.
  const int doublings = static_cast<int>(std::min<uint64_t>(entry->ejections - 1, 16));
  entry->ejected_until = absl::Now() + std::min(options_.eject_backoff * (1 << doublings), kMaxEjection);
  entry->ok_streak = 0;
  entry->last_error = reason;
  if (StateOf(*entry) != old_state) Emit(BackendEvent::Type::kStateChanged, *entry, old_state, "ejected: " + reason);
  return UpdateOf(*entry);
}

std::optional<BackendUpdate> UpstreamRegistry::OnProbe(const ProbeResult& result) {
  const bool ok = result.ok;
  const std::string& error = result.error;
  const std::optional<SocketAddress>& resolved = result.resolved;
  std::lock_guard<std::mutex> lock(mu_);
  Entry* entry = Find(result.address);
  if (entry == nullptr) return std::nullopt;
  const BackendState old_state = StateOf(*entry);
  bool changed = false;
  if (resolved.has_value() && !SameAddress(*resolved, entry->resolved)) {
    entry->resolved = *resolved;  // the name now points elsewhere
    changed = true;
  }
  std::string reason;
  if (ok) {
    ++entry->probes_ok;
    ++entry->ok_streak;
    entry->fail_streak = 0;
    if (entry->probe_down && entry->ok_streak >= options_.rise) {
      entry->probe_down = false;
      reason = absl::StrCat(entry->ok_streak, " probes succeeded");
    }
    if (entry->ejected && absl::Now() >= entry->ejected_until) {
      entry->ejected = false;
      reason = "a probe succeeded after the ejection's back-off";
    }
  } else {
    ++entry->probes_failed;
    ++entry->fail_streak;
    entry->ok_streak = 0;
    entry->last_error = error;
    if (!entry->probe_down && entry->fail_streak >= options_.fall) {
      entry->probe_down = true;
      reason = absl::StrCat(entry->fail_streak, " probes failed: ", error);
    }
  }
  if (StateOf(*entry) != old_state) {
    Emit(BackendEvent::Type::kStateChanged, *entry, old_state, reason);
    changed = true;
  }
  if (!changed) return std::nullopt;
  return UpdateOf(*entry);
}

std::vector<BackendUpdate> UpstreamRegistry::AllUpdates() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BackendUpdate> updates;
  for (const auto& [address, entry] : entries_) updates.push_back(CurrentUpdate(entry));
  return updates;
}

std::vector<BackendInfo> UpstreamRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<BackendInfo> infos;
  for (const auto& [address, entry] : entries_) infos.push_back(InfoOf(entry));
  return infos;
}

absl::StatusOr<BackendInfo> UpstreamRegistry::Get(absl::string_view address) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return absl::NotFoundError(absl::StrCat("no backend ", address));
  return InfoOf(it->second);
}

std::vector<std::string> UpstreamRegistry::Addresses() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> addresses;
  for (const auto& [address, entry] : entries_) addresses.push_back(address);
  return addresses;
}

void UpstreamRegistry::AddObserver(std::shared_ptr<BackendObserver> observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observers_.push_back(std::move(observer));
}

void UpstreamRegistry::RemoveObserver(const BackendObserver* observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observers_.erase(
      std::remove_if(observers_.begin(), observers_.end(), [observer](const auto& o) { return o.get() == observer; }),
      observers_.end());
}

}  // namespace gateway
