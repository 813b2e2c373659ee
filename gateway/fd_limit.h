// How many connections the process can hold: the fd limit, the fds already
// open, and a reserve kept for everything that is not a client connection
// (the control plane's and metrics server's sockets, files, listeners).
// Running out of fds hurts more than the connection that hit it: gRPC 1.51
// never retries an accept that failed with EMFILE, so a control plane that
// met the limit once stays deaf. Thread-compatible free functions.
#pragma once

#include <cstdint>

namespace gateway {

struct FdBudget {
  int64_t limit = 0;            // RLIMIT_NOFILE (soft)
  int64_t open = 0;             // fds open when measured
  int64_t reserve = 0;          // kept for non-client use
  int64_t max_connections = 0;  // limit - open - reserve, at least 1
};

// The reserve for a given fd limit: a tenth of it, at least 64, at most 1024.
int64_t FdReserve(int64_t fd_limit);

// Reads the current limit and open fds of this process and derives the
// default connection limit from them.
FdBudget CurrentFdBudget();

}  // namespace gateway
