// Upstream mode's books, as a test reads them from a gateway once it is
// quiet: what the backends answered, what failed, and what no backend could
// be blamed for. Any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gateway/gateway.h"
#include "gateway/upstream_types.h"

namespace gateway::testing {

struct UpstreamTotals {
  uint64_t requests = 0;         // written to a backend
  uint64_t responses = 0;        // forwarded from a backend
  uint64_t backend_errors = 0;   // error responses blamed on a backend (timeout, reset, protocol)
  uint64_t unrouted_errors = 0;  // error responses no backend is blamed for (no backend, overload)
  uint64_t redispatched = 0;
  uint64_t error_responses() const { return backend_errors + unrouted_errors; }
  uint64_t answered() const { return responses + error_responses(); }
};

// The error kinds that put an error response in the place of a request
// written to this backend (kConnect only re-dispatches; kNoBackend and
// kOverload are counted per reactor, blamed on no backend).
inline uint64_t ErrorResponses(const BackendInfo& info) {
  return info.errors[static_cast<int>(UpstreamError::kTimeout)] + info.errors[static_cast<int>(UpstreamError::kReset)] +
         info.errors[static_cast<int>(UpstreamError::kProtocol)];
}

// The books of `gw`'s backends now, plus those of backends already removed
// (their last pictures, as RemoveBackend returned them).
UpstreamTotals Totals(const Gateway& gw, const std::vector<BackendInfo>& removed = {});

// Every backend with its state and counters, for failure messages.
std::string DescribeBackends(const Gateway& gw);

}  // namespace gateway::testing
