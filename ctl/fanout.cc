// The fan-out's thread pool: a shared index the workers pull from.
#include "ctl/fanout.h"

#include <algorithm>
#include <atomic>
#include <thread>

namespace gateway::ctl {

void RunParallel(size_t n, size_t parallelism, const std::function<void(size_t)>& job) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  const size_t count = std::min(n, std::max<size_t>(parallelism, 1));
  workers.reserve(count);
  for (size_t w = 0; w < count; ++w) {
    workers.emplace_back([&] {
      for (size_t i = next.fetch_add(1); i < n; i = next.fetch_add(1)) job(i);
    });
  }
  for (std::thread& worker : workers) worker.join();
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

}  // namespace gateway::ctl
