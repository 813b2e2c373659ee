// Diagnostics of the data plane: one-line messages on stderr, prefixed
// "gateway: ", and the abort for failures that mean a bug, not a condition.
#pragma once

#include "absl/strings/string_view.h"

namespace gateway {

// Thread-safe (one fprintf per line).
void LogError(absl::string_view message);

// For syscalls that cannot fail with valid arguments (epoll_wait's EBADF,
// eventfd's EMFILE at start-up): prints "<what>: <strerror(errno)>" and
// aborts, as libuv and muduo do.
[[noreturn]] void DieErrno(absl::string_view what);
[[noreturn]] void Die(absl::string_view message);

}  // namespace gateway
