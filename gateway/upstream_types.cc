#include "gateway/upstream_types.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace gateway {
namespace {

constexpr uint32_t kMaxWeight = 1000;

}  // namespace

absl::StatusOr<BackendSpec> ParseBackendSpec(absl::string_view text) {
  BackendSpec spec;
  absl::string_view address = text;
  if (const size_t eq = text.rfind('='); eq != absl::string_view::npos) {
    address = text.substr(0, eq);
    const absl::string_view weight = text.substr(eq + 1);
    if (!absl::SimpleAtoi(weight, &spec.weight) || spec.weight == 0 || spec.weight > kMaxWeight) {
      return absl::InvalidArgumentError(
          absl::StrCat("backend \"", text, "\": the weight must be 1..", kMaxWeight, ", not \"", weight, "\""));
    }
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("backend \"", text, "\": expected host:port"));
  }
  absl::string_view host = address.substr(0, colon);
  const absl::string_view port_text = address.substr(colon + 1);
  int port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("backend \"", text, "\": the port must be 1..65535"));
  }
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]") || host.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("backend \"", text, "\": unbalanced [ ] around the host"));
    }
  } else if (host.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("backend \"", text, "\": write an IPv6 host as [addr]:port"));
  }
  if (host == "*" || host.find_first_of(" ,=/") != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("backend \"", text, "\": \"", host, "\" is not a host"));
  }
  spec.address = std::string(address);
  return spec;
}

absl::StatusOr<std::vector<BackendSpec>> ParseBackendList(absl::string_view text) {
  std::vector<BackendSpec> specs;
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    absl::StatusOr<BackendSpec> spec = ParseBackendSpec(absl::StripAsciiWhitespace(item));
    if (!spec.ok()) return spec.status();
    if (!seen.insert(spec->address).second) {
      return absl::InvalidArgumentError(absl::StrCat("backend \"", spec->address, "\" is listed twice"));
    }
    specs.push_back(*std::move(spec));
  }
  return specs;
}

absl::string_view LoadBalancingName(LoadBalancing lb) {
  switch (lb) {
    case LoadBalancing::kRoundRobin: return "round_robin";
    case LoadBalancing::kLeastInflight: return "least_inflight";
    case LoadBalancing::kHash: return "hash";
  }
  return "unknown";
}

bool AbslParseFlag(absl::string_view text, LoadBalancing* lb, std::string* error) {
  for (LoadBalancing candidate : {LoadBalancing::kRoundRobin, LoadBalancing::kLeastInflight, LoadBalancing::kHash}) {
    if (text == LoadBalancingName(candidate)) {
      *lb = candidate;
      return true;
    }
  }
  *error = "must be round_robin, least_inflight or hash";
  return false;
}

std::string AbslUnparseFlag(LoadBalancing lb) { return std::string(LoadBalancingName(lb)); }

absl::string_view UpstreamErrorModeName(UpstreamErrorMode mode) {
  return mode == UpstreamErrorMode::kClose ? "close" : "empty";
}

bool AbslParseFlag(absl::string_view text, UpstreamErrorMode* mode, std::string* error) {
  if (text == "empty") {
    *mode = UpstreamErrorMode::kEmptyFrame;
    return true;
  }
  if (text == "close") {
    *mode = UpstreamErrorMode::kClose;
    return true;
  }
  *error = "must be empty or close";
  return false;
}

std::string AbslUnparseFlag(UpstreamErrorMode mode) { return std::string(UpstreamErrorModeName(mode)); }

absl::string_view BackendStateName(BackendState state) {
  switch (state) {
    case BackendState::kHealthy: return "healthy";
    case BackendState::kUnhealthy: return "unhealthy";
    case BackendState::kDraining: return "draining";
    case BackendState::kEjected: return "ejected";
  }
  return "unknown";
}

absl::string_view UpstreamErrorName(UpstreamError error) {
  switch (error) {
    case UpstreamError::kTimeout: return "timeout";
    case UpstreamError::kReset: return "reset";
    case UpstreamError::kConnect: return "connect";
    case UpstreamError::kProtocol: return "protocol";
    case UpstreamError::kNoBackend: return "no_backend";
    case UpstreamError::kOverload: return "overload";
  }
  return "unknown";
}

}  // namespace gateway
