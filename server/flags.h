// The gateway binary's command-line flags (all defined in flags.cc), how
// --help and --version present them, and the options they make.
#pragma once

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "control/control_server.h"
#include "gateway/options.h"

ABSL_DECLARE_FLAG(absl::Duration, drain_timeout);
ABSL_DECLARE_FLAG(absl::Duration, drain_delay);
ABSL_DECLARE_FLAG(absl::Duration, drain_spread);
ABSL_DECLARE_FLAG(std::string, health_listen);
ABSL_DECLARE_FLAG(std::string, metrics_listen);

namespace gateway::server {

// The label --help shows for the gateway's own flags ("Flags from gateway:").
inline constexpr char kFlagsLabel[] = "gateway";

// Sets the usage message, `--version` ("gateway 0.2.0 (revision abc123,
// Release build, GNU-12.2.0)") and `--help` (the gateway's flags only,
// labelled kFlagsLabel; --helpfull lists Abseil's too). Call before parsing.
void ConfigureUsage();

// The data plane's options from the flags, checked by gateway::Validate.
absl::StatusOr<GatewayOptions> GatewayOptionsFromFlags();

// The control plane's options from the flags (--control_listen and friends).
absl::StatusOr<control::ControlServerOptions> ControlOptionsFromFlags();

// One line, e.g. "gateway 0.2.0 (revision abc123, Release build, GNU-12.2.0)".
std::string VersionLine();

}  // namespace gateway::server
