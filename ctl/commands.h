// gatewayctl's subcommands: what each is called, takes and does, and the
// functions that run them (one file per family: cmd_stats.cc, cmd_modes.cc,
// cmd_connections.cc, cmd_backends.cc, cmd_watch.cc).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "ctl/connect.h"
#include "ctl/output.h"
#include "ctl/targets.h"

namespace gateway::ctl {

// Everything a subcommand runs with. Does not own the dialer or streams.
struct Invocation {
  std::vector<std::string> args;  // positional arguments after the subcommand
  std::vector<Target> targets;
  const Dialer* dialer = nullptr;
  Format format = Format::kTable;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
};

// Writes "gatewayctl: MESSAGE" on `err` and returns kExitUsage.
int UsageError(std::ostream& err, absl::string_view message);

struct Command {
  const char* name;
  const char* synopsis;  // what follows the name in the help, e.g. "level|edge"
  const char* summary;
  int positional;      // how many positional arguments it takes, exactly
  bool single_target;  // fds name connections of one gateway: exactly one target
  const char* flags;   // the subcommand flags it reads, comma-separated ("fd,id,force")
  int (*run)(const Invocation& invocation);
};

// Every subcommand, in the order the help lists them.
const std::vector<Command>& Commands();
// The subcommand called `name`, or nullptr.
const Command* FindCommand(absl::string_view name);
// `gatewayctl help`: usage, subcommands, the common flags, exit codes.
std::string HelpText();
// INVALID_ARGUMENT ("--fd does not apply to stats") if a subcommand flag
// `command` does not read was given, so it is not silently ignored.
absl::Status CheckFlags(const Command& command);

int RunStats(const Invocation& invocation);
int RunGetTriggerMode(const Invocation& invocation);
int RunSetTriggerMode(const Invocation& invocation);
int RunGetIoModel(const Invocation& invocation);
int RunSetIoModel(const Invocation& invocation);
int RunList(const Invocation& invocation);
int RunGet(const Invocation& invocation);
int RunClose(const Invocation& invocation);
int RunDrain(const Invocation& invocation);
int RunWatch(const Invocation& invocation);
int RunBackends(const Invocation& invocation);
int RunAddBackend(const Invocation& invocation);
int RunRemoveBackend(const Invocation& invocation);
int RunDrainBackend(const Invocation& invocation);
int RunUndrainBackend(const Invocation& invocation);
int RunSetBackendWeight(const Invocation& invocation);
int RunWatchBackends(const Invocation& invocation);

}  // namespace gateway::ctl
