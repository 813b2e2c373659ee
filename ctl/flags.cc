// gatewayctl's flag definitions and --help.
#include "ctl/flags.h"

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/str_cat.h"
#include "gateway/build_info.h"

ABSL_FLAG(std::string, targets, "",
          "Control planes to call, host:port,host:port,... (IPv6 as [addr]:port); default 127.0.0.1:50051");
ABSL_FLAG(std::string, dns, "",
          "name:port: call every IPv4 and IPv6 address the name resolves to (e.g. a headless Service)");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(5), "Deadline of each call (each page of a listing)");
ABSL_FLAG(std::string, output, "table", "table or json (watch: a JSON object a line)");

ABSL_FLAG(std::string, tls_ca, "", "PEM CA certificate(s) that verify the servers: turns TLS on");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate chain for mTLS (with --tls_key; turns TLS on)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key for --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name the server certificates must carry, instead of the target's host (with --dns: the DNS name)");

ABSL_FLAG(std::string, state, "", "list: only connections in this state (accept|read|process|write|closing)");
ABSL_FLAG(int, fd, -1, "get, close: the connection's fd on the (single) target");
ABSL_FLAG(uint64_t, id, 0, "get, close: the connection's id as listed; NOT_FOUND if the fd now holds another");
ABSL_FLAG(bool, force, false, "close: at once, dropping queued responses (the client may see a reset)");
ABSL_FLAG(std::optional<double>, fraction, std::nullopt,
          "drain: this share (0, 1] of each gateway's matching connections");
ABSL_FLAG(std::optional<int64_t>, count, std::nullopt, "drain: at most this many connections on each gateway");
ABSL_FLAG(std::optional<absl::Duration>, min_age, std::nullopt, "drain: only connections open at least this long");
ABSL_FLAG(std::optional<absl::Duration>, spread, std::nullopt,
          "drain: spread the closes over this window, oldest first");
ABSL_FLAG(absl::Duration, duration, absl::ZeroDuration(), "watch, watch-backends: stop after this long (0: at Ctrl-C)");
ABSL_FLAG(bool, state_changes, false, "watch: also every connection state change (many under load)");
ABSL_FLAG(uint32_t, weight, 0, "add-backend: the weight, 1..1000 (0: 1)");

namespace gateway::ctl {

void ConfigureUsage(const std::string& usage) {
  absl::SetProgramUsageMessage(usage);
  absl::FlagsUsageConfig config;
  // Flags defined here get a plain label and no build-machine path.
  config.normalize_filename = [](absl::string_view file) -> std::string {
    return file == __FILE__ ? kFlagsLabel : std::string(file);
  };
  config.contains_help_flags = [](absl::string_view label) { return label == kFlagsLabel; };
  config.contains_helpshort_flags = config.contains_help_flags;
  config.version_string = [] {
    return absl::StrCat("gatewayctl ", build_info::kVersion, " (revision ", build_info::kRevision, ", ",
                        build_info::kBuildType, " build, ", build_info::kCompiler, ")\n");
  };
  absl::SetFlagsUsageConfig(config);
}

}  // namespace gateway::ctl
