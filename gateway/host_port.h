// The one "host:port" splitter every listener (data plane, control plane,
// metrics) reads its address with.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gateway {

struct HostPort {
  std::string host;        // without the brackets of "[v6]:port"; may be empty
  std::string port;        // the text after the last ':', not checked
  bool bracketed = false;  // the host was written as "[...]"
};

// Splits `address` at its last ':'; a host written as "[...]" loses its
// brackets. INVALID_ARGUMENT "address '<address>' is not host:port" when
// there is no ':'.
absl::StatusOr<HostPort> SplitHostPort(absl::string_view address);

// A decimal port 0..65535, or nullopt.
std::optional<int> ParsePort(absl::string_view text);

}  // namespace gateway
