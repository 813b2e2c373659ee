// The subcommand table and the help built from it.
#include "ctl/commands.h"

#include <algorithm>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace gateway::ctl {

int UsageError(std::ostream& err, absl::string_view message) {
  err << "gatewayctl: " << message << "\n";
  return kExitUsage;
}

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"stats", "", "GetStats: a row per gateway and a TOTAL", 0, false, "", RunStats},
      {"list", "[--state=read|write|...]", "ListConnections, every page, merged", 0, false, "state", RunList},
      {"get", "--fd=N [--id=ID]", "GetConnection (one target)", 0, true, "fd,id", RunGet},
      {"close", "--fd=N [--id=ID] [--force]", "CloseConnection (one target)", 0, true, "fd,id,force", RunClose},
      {"drain", "--fraction=F|--count=N [--min_age=D] [--spread=D]", "DrainConnections on every gateway (oldest first)",
       0, false, "fraction,count,min_age,spread", RunDrain},
      {"watch", "[--duration=D] [--state_changes]", "WatchConnections from every gateway, merged", 0, false,
       "duration,state_changes", RunWatch},
      {"get-trigger-mode", "", "GetTriggerMode", 0, false, "", RunGetTriggerMode},
      {"set-trigger-mode", "level|edge", "SetTriggerMode", 1, false, "", RunSetTriggerMode},
      {"get-io-model", "", "GetIoModel", 0, false, "", RunGetIoModel},
      {"set-io-model", "select|poll|epoll|io_uring", "SetIoModel", 1, false, "", RunSetIoModel},
      {"backends", "", "ListBackends (upstream mode)", 0, false, "", RunBackends},
      {"add-backend", "ADDR [--weight=W]", "AddBackend", 1, false, "weight", RunAddBackend},
      {"remove-backend", "ADDR", "RemoveBackend: drains it, then removes it", 1, false, "", RunRemoveBackend},
      {"drain-backend", "ADDR", "DrainBackend: returns once idle (up to --timeout)", 1, false, "", RunDrainBackend},
      {"undrain-backend", "ADDR", "UndrainBackend", 1, false, "", RunUndrainBackend},
      {"set-backend-weight", "ADDR W", "SetBackendWeight (1..1000)", 2, false, "", RunSetBackendWeight},
      {"watch-backends", "[--duration=D]", "WatchBackends from every gateway, merged", 0, false, "duration",
       RunWatchBackends},
  };
  return commands;
}

const Command* FindCommand(absl::string_view name) {
  const std::vector<Command>& commands = Commands();
  auto it = std::find_if(commands.begin(), commands.end(), [&](const Command& c) { return name == c.name; });
  return it == commands.end() ? nullptr : &*it;
}

absl::Status CheckFlags(const Command& command) {
  // Every flag some subcommand reads; the common ones apply to all.
  static constexpr const char* kSubcommandFlags[] = {
      "state", "fd", "id", "force", "fraction", "count", "min_age", "spread", "duration", "state_changes", "weight"};
  const std::vector<absl::string_view> reads = absl::StrSplit(command.flags, ',', absl::SkipEmpty());
  for (const char* name : kSubcommandFlags) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // (Debian's Abseil keeps IsSpecifiedOnCommandLine private: a flag given
    // its default value passes unnoticed, which is harmless.)
    if (flag == nullptr || flag->CurrentValue() == flag->DefaultValue()) continue;
    if (std::find(reads.begin(), reads.end(), name) == reads.end()) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " does not apply to ", command.name));
    }
  }
  return absl::OkStatus();
}

std::string HelpText() {
  std::string text =
      "Sends a control call to many gateways at once and merges the answers.\n"
      "Usage: gatewayctl [--targets=host:port,...|--dns=name:port] [--output=table|json] [--timeout=5s]\n"
      "                  [--tls_ca=ca.pem [--tls_cert=c.pem --tls_key=c.key] [--tls_server_name=N]] SUBCOMMAND "
      "[ARGS]\n\nSubcommands:\n";
  for (const Command& c : Commands()) {
    // The summary goes under a long synopsis, to stay within 100 columns.
    const std::string head = absl::StrFormat("  %-18s %s", c.name, c.synopsis);
    if (head.size() < 52) {
      absl::StrAppendFormat(&text, "%-52s %s\n", head, c.summary);
    } else {
      absl::StrAppendFormat(&text, "%s\n%-52s %s\n", head, "", c.summary);
    }
  }
  absl::StrAppend(
      &text,
      "  help                                               this text (gatewayctl --help adds the flags)\n\n"
      "Without --targets or --dns: 127.0.0.1:50051. Tables have a TARGET column first; a target\n"
      "that fails gets an error row and a line on stderr (gatewayctl: TARGET: CODE: message),\n"
      "and the others' results are still printed.\n"
      "Exit status: 0 every target answered; 2 some failed; 1 all failed, or a usage error.\n");
  return text;
}

}  // namespace gateway::ctl
