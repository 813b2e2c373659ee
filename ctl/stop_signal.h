// What ends a watch: Ctrl-C (SIGINT) or SIGTERM, --duration, or every
// stream having ended on its own.
#pragma once

#include "absl/time/time.h"

namespace gateway::ctl {

// Thread-safe: any thread may Notify(); one thread Waits. At most one alive
// at a time (it owns the process's SIGINT and SIGTERM handlers, restored on
// destruction). A second Ctrl-C kills the process as usual.
class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  // Wakes Wait.
  void Notify();
  // Returns after SIGINT/SIGTERM, a Notify(), or `timeout` (zero or less: no
  // timeout); true if a signal ended it.
  bool Wait(absl::Duration timeout);

 private:
  int pipe_[2] = {-1, -1};
};

}  // namespace gateway::ctl
