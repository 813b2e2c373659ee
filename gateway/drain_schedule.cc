#include "gateway/drain_schedule.h"

namespace gateway {

std::vector<DrainSchedule::Entry> DrainSchedule::TakeDue(int64_t now_ns) {
  std::vector<Entry> due;
  while (!heap_.empty() && heap_.top().due_ns <= now_ns) {
    due.push_back(heap_.top());
    heap_.pop();
  }
  return due;
}

}  // namespace gateway
