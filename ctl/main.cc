// gatewayctl: flags -> targets -> dialer -> the subcommand, which fans the
// call out to every target and prints the merged answer.
#include <grpc/support/log.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "ctl/commands.h"
#include "ctl/connect.h"
#include "ctl/flags.h"
#include "ctl/output.h"
#include "ctl/targets.h"

namespace gateway::ctl {
namespace {

absl::StatusOr<std::vector<Target>> TargetsFromFlags() {
  const std::string targets = absl::GetFlag(FLAGS_targets);
  const std::string dns = absl::GetFlag(FLAGS_dns);
  if (!targets.empty() && !dns.empty()) return absl::InvalidArgumentError("give --targets or --dns, not both");
  if (!dns.empty()) return ResolveTargets(dns);
  return ParseTargets(targets.empty() ? kDefaultTarget : targets);
}

absl::StatusOr<Dialer> DialerFromFlags() {
  TlsFiles tls{absl::GetFlag(FLAGS_tls_ca), absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
               absl::GetFlag(FLAGS_tls_server_name)};
  const bool tls_on = !tls.ca.empty() || !tls.cert.empty() || !tls.key.empty();
  // The addresses a name resolves to are not what the certificates name: the name is.
  if (tls_on && tls.server_name.empty() && !absl::GetFlag(FLAGS_dns).empty()) {
    const std::string dns = absl::GetFlag(FLAGS_dns);
    tls.server_name = dns.substr(0, dns.rfind(':'));
  }
  const absl::Duration timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout <= absl::ZeroDuration()) return absl::InvalidArgumentError("--timeout must be > 0");
  return Dialer::Create(tls, timeout);
}

int Main(const std::vector<char*>& positional) {
  if (positional.size() < 2) return UsageError(std::cerr, "no subcommand (gatewayctl help lists them)");
  const std::string name = positional[1];
  if (name == "help") {
    std::cout << HelpText();
    return kExitOk;
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) {
    return UsageError(std::cerr, absl::StrCat("unknown subcommand '", name, "' (gatewayctl help lists them)"));
  }
  Invocation inv;
  inv.args.assign(positional.begin() + 2, positional.end());
  if (static_cast<int>(inv.args.size()) != command->positional) {
    return UsageError(
        std::cerr, absl::StrCat("usage: gatewayctl ", command->name, *command->synopsis ? " " : "", command->synopsis));
  }
  if (absl::Status flags = CheckFlags(*command); !flags.ok()) return UsageError(std::cerr, flags.message());
  absl::StatusOr<Format> format = ParseFormat(absl::GetFlag(FLAGS_output));
  if (!format.ok()) return UsageError(std::cerr, format.status().message());
  absl::StatusOr<std::vector<Target>> targets = TargetsFromFlags();
  if (!targets.ok()) return UsageError(std::cerr, targets.status().message());
  if (command->single_target && targets->size() != 1) {
    return UsageError(std::cerr, absl::StrCat(command->name,
                                              " needs exactly one target (an fd names a connection on one "
                                              "gateway): --targets=HOST:PORT; got ",
                                              targets->size()));
  }
  absl::StatusOr<Dialer> dialer = DialerFromFlags();
  if (!dialer.ok()) return UsageError(std::cerr, dialer.status().message());
  inv.targets = *std::move(targets);
  inv.dialer = &*dialer;
  inv.format = *format;
  inv.out = &std::cout;
  inv.err = &std::cerr;
  return command->run(inv);
}

}  // namespace
}  // namespace gateway::ctl

int main(int argc, char** argv) {
  // Each failure is reported once, as the target's status; gRPC's own log
  // lines would repeat it on stderr. GRPC_VERBOSITY=... brings them back.
  if (std::getenv("GRPC_VERBOSITY") == nullptr) gpr_set_log_function([](gpr_log_func_args*) {});
  gateway::ctl::ConfigureUsage(gateway::ctl::HelpText());
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  return gateway::ctl::Main(positional);
}
