// Readers for another process's CPU time and resident memory from /proc, used
// to charge the server for the measured window only.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace bench {

// utime + stime of process `pid` (all its threads, live and exited), in
// seconds. Resolution is one clock tick (10 ms with USER_HZ = 100).
absl::StatusOr<double> ProcessCpuSeconds(pid_t pid);

// Resident set size of process `pid`, in bytes.
absl::StatusOr<int64_t> ProcessRssBytes(pid_t pid);

// CPU time (user + system) of this process so far, in seconds.
double SelfCpuSeconds();

}  // namespace bench
