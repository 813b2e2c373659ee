// The gateway-wide truth about backends in upstream mode: which exist, their
// weights, what operators asked (drain, remove) and what health checks found
// (probes, passive ejections). Reactors' pools mirror it through
// BackendUpdates that the Gateway posts to them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gateway/socket_util.h"
#include "gateway/upstream_pool.h"
#include "gateway/upstream_probe.h"
#include "gateway/upstream_types.h"

namespace gateway {

// Resolves "host:port" (a name through getaddrinfo, which may block) to the
// first address it gives, or INVALID_ARGUMENT.
absl::StatusOr<SocketAddress> ResolveBackend(absl::string_view address);

// Thread-safe: one mutex guards everything; observers are called under it
// (so events reach each observer in order) and must not call back.
class UpstreamRegistry {
 public:
  UpstreamRegistry(const UpstreamOptions& options, int reactors);

  // INVALID_ARGUMENT (bad address or weight, unresolvable), ALREADY_EXISTS.
  absl::StatusOr<BackendUpdate> Add(const BackendSpec& spec);
  // NOT_FOUND unless the backend exists (and is not being removed).
  absl::StatusOr<BackendUpdate> SetDraining(absl::string_view address, bool draining);
  absl::StatusOr<BackendUpdate> SetWeight(absl::string_view address, uint32_t weight);
  absl::StatusOr<BackendUpdate> MarkRemoving(absl::string_view address);
  // Forgets it; returns its last picture.
  std::optional<BackendInfo> Erase(absl::string_view address);

  // Passive health: a reactor saw too many errors in a row. The update to
  // send everywhere, or nothing if it was not taking requests anyway.
  std::optional<BackendUpdate> Eject(absl::string_view address, std::string reason);
  // An active probe's result (`resolved`: where it connected, if it did).
  std::optional<BackendUpdate> OnProbe(const ProbeResult& result);

  std::vector<BackendUpdate> AllUpdates() const;
  std::vector<BackendInfo> List() const;
  absl::StatusOr<BackendInfo> Get(absl::string_view address) const;
  std::vector<std::string> Addresses() const;

  void AddObserver(std::shared_ptr<BackendObserver> observer);
  void RemoveObserver(const BackendObserver* observer);

 private:
  struct Entry {
    BackendSpec spec;
    SocketAddress resolved{};
    std::shared_ptr<BackendStats> stats;
    absl::Time added_at;
    uint64_t version = 0;
    bool draining = false;
    bool removing = false;
    bool probe_down = false;  // failed `fall` probes in a row; up after `rise` successes
    bool ejected = false;     // passive; back after a probe succeeds past ejected_until
    absl::Time ejected_until;
    int ok_streak = 0;
    int fail_streak = 0;
    uint64_t ejections = 0;
    uint64_t probes_ok = 0;
    uint64_t probes_failed = 0;
    std::string last_error;
  };

  static BackendState StateOf(const Entry& entry);
  static BackendUpdate CurrentUpdate(const Entry& entry);
  BackendUpdate UpdateOf(Entry& entry);  // bumps the version
  BackendInfo InfoOf(const Entry& entry) const;
  void Emit(BackendEvent::Type type, const Entry& entry, BackendState old_state, std::string reason);
  Entry* Find(absl::string_view address);

  const UpstreamOptions options_;
  const int reactors_;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;        // guarded by mu_; sorted by address
  std::vector<std::shared_ptr<BackendObserver>> observers_;  // guarded by mu_
};

}  // namespace gateway
