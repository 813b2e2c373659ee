// Upstream mode's value types, shared by the data plane, the control plane
// and metrics: how backends are configured, what a backend reports, and the
// events a backend watcher receives.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway {

// One backend as configured: "host:port", with an optional "=weight".
struct BackendSpec {
  std::string address;  // "host:port" exactly as given: the backend's name
  uint32_t weight = 1;  // 1..1000 (round_robin); 0 is refused
};

// "host:port[=weight]" (host may be a name, an IPv4 or a [IPv6] literal), or
// INVALID_ARGUMENT saying what is wrong with it.
absl::StatusOr<BackendSpec> ParseBackendSpec(absl::string_view text);
// A comma-separated list of them; duplicates are INVALID_ARGUMENT.
absl::StatusOr<std::vector<BackendSpec>> ParseBackendList(absl::string_view text);

enum class LoadBalancing : uint8_t {
  kRoundRobin,     // weighted (smooth weighted round robin, as nginx)
  kLeastInflight,  // power of two choices on in-flight requests
  kHash,           // every frame of one client connection to one backend
};
absl::string_view LoadBalancingName(LoadBalancing lb);  // "round_robin", "least_inflight", "hash"
bool AbslParseFlag(absl::string_view text, LoadBalancing* lb, std::string* error);
std::string AbslUnparseFlag(LoadBalancing lb);

// What a client gets for a frame written to a backend that never answered it.
enum class UpstreamErrorMode : uint8_t {
  kEmptyFrame,  // the empty frame "00000" in the request's place; the client stays open
  kClose,       // the earlier responses, then FIN
};
absl::string_view UpstreamErrorModeName(UpstreamErrorMode mode);  // "empty", "close"
bool AbslParseFlag(absl::string_view text, UpstreamErrorMode* mode, std::string* error);
std::string AbslUnparseFlag(UpstreamErrorMode mode);

// Upstream mode is on when `backends` is not empty at start.
struct UpstreamOptions {
  std::vector<BackendSpec> backends;
  int connections = 1;  // per backend per reactor, 1..8
  LoadBalancing lb = LoadBalancing::kRoundRobin;
  UpstreamErrorMode error_mode = UpstreamErrorMode::kEmptyFrame;
  absl::Duration timeout = absl::Seconds(5);          // per request, from its write
  absl::Duration connect_timeout = absl::Seconds(1);  // per upstream connect
  int max_inflight = 1024;                            // requests written and unanswered, per upstream connection
  int max_pending = 4096;                             // requests waiting to be written, per backend per reactor
  absl::Duration probe_interval = absl::Seconds(1);   // active health check; zero = off
  int rise = 2;                                       // successful probes that mark an unhealthy backend up
  int fall = 3;                                       // failed probes that mark a backend down
  int eject_after = 5;                                // consecutive request errors or timeouts that eject a backend
  absl::Duration eject_backoff = absl::Seconds(1);    // doubled per ejection, up to 30 s
  std::string probe_payload = "ping";                 // sent as a frame; any non-empty answer is success
  bool enabled() const { return !backends.empty(); }
};

enum class BackendState : uint8_t {
  kHealthy,    // takes new requests
  kUnhealthy,  // failed its active probes; back after `rise` successful ones
  kDraining,   // an operator's DrainBackend/RemoveBackend: no new requests
  kEjected,    // passive: too many consecutive errors; back only after a probe succeeds
};
inline constexpr int kNumBackendStates = 4;
absl::string_view BackendStateName(BackendState state);  // "healthy", ...

// Why a request got the error response instead of a backend's answer.
enum class UpstreamError : uint8_t {
  kTimeout,    // written, no answer within --upstream_timeout
  kReset,      // written, then the upstream connection reset or closed
  kConnect,    // the backend refused or did not answer a connect (requests re-dispatched)
  kProtocol,   // the backend sent a malformed frame (or an empty one)
  kNoBackend,  // no healthy backend to send it to
  kOverload,   // every healthy backend's queue was full
};
inline constexpr int kNumUpstreamErrors = 6;
absl::string_view UpstreamErrorName(UpstreamError error);  // "timeout", "reset", ...

// Seconds from a request's write to a backend until its response is whole.
inline constexpr std::array<double, 19> kUpstreamDurationBounds = {
    1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// Frames carried by one write to an upstream connection.
inline constexpr std::array<double, 11> kUpstreamBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

// One backend as seen across all reactors, summed.
struct BackendInfo {
  std::string address;
  uint32_t weight = 1;
  BackendState state = BackendState::kHealthy;
  uint64_t connections = 0;                           // upstream connections open now (all reactors)
  uint64_t inflight = 0;                              // requests written and unanswered
  uint64_t pending = 0;                               // requests waiting to be written
  uint64_t requests = 0;                              // requests written to it
  uint64_t responses = 0;                             // responses forwarded from it
  std::array<uint64_t, kNumUpstreamErrors> errors{};  // by UpstreamError
  uint64_t redispatched = 0;                          // requests moved to another backend before being written
  uint64_t ejections = 0;
  uint64_t probes_ok = 0;
  uint64_t probes_failed = 0;
  std::string last_error;  // the last probe or connection error, "" if none
  // Request latency (write to whole response): mean and buckets (bounds:
  // kUpstreamDurationBounds, last bucket +Inf).
  std::array<uint64_t, kUpstreamDurationBounds.size() + 1> duration_buckets{};
  double duration_sum_seconds = 0;
  absl::Time added_at;
};

// A backend's life as WatchBackends reports it.
struct BackendEvent {
  enum class Type : uint8_t { kAdded, kRemoved, kStateChanged, kWeightChanged };
  Type type = Type::kAdded;
  absl::Time time;
  BackendInfo backend;                              // after the change
  BackendState old_state = BackendState::kHealthy;  // kStateChanged
  std::string reason;  // e.g. "3 probes failed: connection refused", "drained by an operator"
};

// Receives backend events on an arbitrary thread, one at a time, until
// removed; must not block or call back into the gateway synchronously.
class BackendObserver {
 public:
  virtual ~BackendObserver() = default;
  virtual void OnBackendEvent(const BackendEvent& event) = 0;
};

}  // namespace gateway
