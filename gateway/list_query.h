// The filter and page of a connection listing.
#pragma once

#include <cstddef>
#include <optional>

#include "gateway/types.h"

namespace gateway {

// A plain value: copy it to any thread.
struct ListQuery {
  std::optional<ConnectionState> state;
  int after_fd = -1;  // only fds greater than this
  size_t limit = 0;   // 0 = no limit
};

}  // namespace gateway
