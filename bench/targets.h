// Targets: the endpoints a reconnecting client picks from at each connect,
// as kube-proxy picks a Service endpoint per new connection: round robin,
// or at random for retries (so that refused clients retrying in step do not
// keep landing on the same dead endpoint). Shared by every worker; a test harness edits it while clients run,
// playing the EndpointSlice controller.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace bench {

struct Endpoint {
  sockaddr_storage address{};
  socklen_t address_len = 0;
  std::string name;  // "host:port" as given
};

// "host:port" (IPv6 as [addr]:port), resolved once.
absl::StatusOr<Endpoint> ResolveEndpoint(const std::string& host_port);

// Thread-safe: any thread may edit or pick.
class Targets {
 public:
  Targets() = default;
  explicit Targets(std::vector<Endpoint> endpoints) : endpoints_(std::move(endpoints)) {}

  void Add(const Endpoint& endpoint);
  // Removes every endpoint named `name`; false if there was none.
  bool Remove(const std::string& name);
  std::vector<std::string> Names() const;
  // The next endpoint in round-robin order, or (`random`) any one; false
  // when the list is empty (the caller treats it as a refused connect).
  bool Pick(Endpoint* out, bool random = false);

 private:
  mutable absl::Mutex mu_;
  std::vector<Endpoint> endpoints_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  std::minstd_rand rng_ ABSL_GUARDED_BY(mu_){0x5eed};
};

}  // namespace bench
