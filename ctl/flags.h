// gatewayctl's flags (all defined in flags.cc): the fleet, the call, the
// output, TLS, and each subcommand's own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

// Fleet, call, output.
ABSL_DECLARE_FLAG(std::string, targets);
ABSL_DECLARE_FLAG(std::string, dns);
ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(std::string, output);
// TLS.
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_server_name);
// Subcommands'.
ABSL_DECLARE_FLAG(std::string, state);
ABSL_DECLARE_FLAG(int, fd);
ABSL_DECLARE_FLAG(uint64_t, id);
ABSL_DECLARE_FLAG(bool, force);
ABSL_DECLARE_FLAG(std::optional<double>, fraction);
ABSL_DECLARE_FLAG(std::optional<int64_t>, count);
ABSL_DECLARE_FLAG(std::optional<absl::Duration>, min_age);
ABSL_DECLARE_FLAG(std::optional<absl::Duration>, spread);
ABSL_DECLARE_FLAG(absl::Duration, duration);
ABSL_DECLARE_FLAG(bool, state_changes);
ABSL_DECLARE_FLAG(uint32_t, weight);

namespace gateway::ctl {

// The label --help shows for gatewayctl's flags.
inline constexpr char kFlagsLabel[] = "gatewayctl";
// Where gatewayctl goes without --targets or --dns: the gateway's default
// --control_listen, so `kubectl exec POD -- gatewayctl stats` needs no flag.
inline constexpr char kDefaultTarget[] = "127.0.0.1:50051";

// Sets the usage message (`usage`), --help (gatewayctl's flags only) and
// --version. Call before parsing.
void ConfigureUsage(const std::string& usage);

}  // namespace gateway::ctl
