#include "gateway/fd_limit.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>

namespace gateway {
namespace {

int64_t CountOpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  int64_t count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return std::max<int64_t>(count - 1, 0);  // not the directory's own fd
}

}  // namespace

int64_t FdReserve(int64_t fd_limit) { return std::clamp<int64_t>(fd_limit / 10, 64, 1024); }

FdBudget CurrentFdBudget() {
  FdBudget budget;
  rlimit limit{};
  budget.limit = getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY
                     ? static_cast<int64_t>(limit.rlim_cur)
                     : 1 << 20;
  budget.open = CountOpenFds();
  budget.reserve = FdReserve(budget.limit);
  budget.max_connections = std::max<int64_t>(budget.limit - budget.open - budget.reserve, 1);
  return budget;
}

}  // namespace gateway
