// Test helpers for running real programs (the gateway binary, gateway-bench,
// prometheus, promtool): a child process whose output goes to a log file and
// which is always stopped and reaped, a bounded run-to-completion helper,
// reading a listening port from a child's log, and a temporary directory
// removed with everything in it.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway::testing {

class TempDir;

// Thread-compatible. Owns the child: the destructor stops it (SIGTERM, then
// SIGKILL) and reaps it. The child also gets SIGKILL if the test process
// dies first (PR_SET_PDEATHSIG), so nothing outlives a crashed test.
class Subprocess {
 public:
  // Starts `argv` (argv[0] searched on PATH) with stdout and stderr appended
  // to `log_path` and stdin from /dev/null.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                           const std::string& log_path);
  // As above, with the log in a temporary directory the Subprocess owns.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  // True until the child has exited (reaps it if it has).
  bool Running();
  // Waits until the child exits and returns its exit status (128 + signal
  // number if a signal ended it); nullopt if `deadline` passes first.
  std::optional<int> Wait(absl::Time deadline);
  // Sends SIGTERM, waits up to `grace`, then SIGKILLs. Returns the exit
  // status, or 128 + signal number if a signal ended it.
  int Stop(absl::Duration grace = absl::Seconds(10));
  // Returns what the child has written so far.
  std::string Log() const;

 private:
  Subprocess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  int WaitUntil(absl::Time deadline);  // -1 if still running at the deadline

  pid_t pid_;
  std::string log_path_;
  std::unique_ptr<TempDir> own_dir_;  // holds log_path_ when Start() chose it
  int exit_code_ = -1;                // set once reaped
};

// The gateway binary's machine-readable line, once everything listens:
//   gateway: ready {"data_port":N,"control_port":N,"metrics_port":N}
// Returns the JSON after the prefix; nullopt if `deadline` passes or the
// process exits first.
std::optional<std::string> WaitForReadyLine(Subprocess& process, absl::Time deadline);
// The value of `"key":N` in a flat JSON object of integers; -1 if absent.
int PortIn(absl::string_view json, absl::string_view key);
// The ready line's `key` ("data_port", "control_port", "metrics_port"); 0 if
// the line does not come (or the server is off).
int WaitForReadyPort(Subprocess& process, absl::string_view key, absl::Time deadline);

struct CommandResult {
  int exit_code = -1;  // 128 + signal if killed
  std::string output;  // stdout and stderr together
};

// Runs `argv` to completion with stdin from `stdin_path` (empty: /dev/null),
// killing it after `timeout`. DEADLINE_EXCEEDED if it had to be killed.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, const std::string& stdin_path,
                                         absl::Duration timeout);

// A fresh directory under $TMPDIR (or /tmp), removed recursively on
// destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Returns path()/name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Returns the whole file, or an empty string if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);
// Writes `text` to `path`, replacing it.
bool WriteFile(const std::string& path, const std::string& text);

}  // namespace gateway::testing
