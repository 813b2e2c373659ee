// When each connection is to be drained: --max_connection_age deadlines, and
// the closes a SIGTERM drain or DrainConnections spreads over a window.
#pragma once

#include <cstdint>
#include <queue>
#include <vector>

#include "gateway/types.h"

namespace gateway {

// Loop-thread only; one per reactor. Entries name a connection by fd and id
// and are not removed when it closes: a due entry whose connection is gone
// (or whose fd now holds another one) is skipped, which keeps closing O(1).
class DrainSchedule {
 public:
  struct Entry {
    int64_t due_ns;
    int fd;
    uint64_t id;
    CloseReason reason;
  };

  void Add(const Entry& entry) { heap_.push(entry); }
  bool empty() const { return heap_.empty(); }
  // The earliest due time, or INT64_MAX if there is none.
  int64_t NextDueNs() const { return heap_.empty() ? INT64_MAX : heap_.top().due_ns; }
  // Removes and returns the entries due at or before `now_ns`, earliest first.
  std::vector<Entry> TakeDue(int64_t now_ns);

 private:
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const { return a.due_ns > b.due_ns; }
  };
  std::priority_queue<Entry, std::vector<Entry>, Later> heap_;
};

}  // namespace gateway
