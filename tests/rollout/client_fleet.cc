#include "tests/rollout/client_fleet.h"

#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace gateway::testing {

int RolloutConns() {
  int conns = 0;
  const char* env = std::getenv("ROLLOUT_CONNS");
  return env != nullptr && absl::SimpleAtoi(env, &conns) && conns > 0 ? conns : 300;
}

std::string ClientTotals::ToString() const {
  return absl::StrFormat(
      "clients: %d/%d established, %d responses; reconnects %d (eof %d, reset %d), refused %d, resent %d; "
      "requests failed %d, lost %d; mismatched %d, duplicated %d; connections given up %d",
      established, conns, completed, reconnects, eofs, resets, refused, resent, failed, lost, mismatched, duplicated,
      errors);
}

ClientFleet::ClientFleet(bench::Targets& targets, const Options& options)
    : options_(options), payload_(options.payload) {
  bench::WorkerOptions base;
  base.mode = bench::Mode::kOpenLoop;
  base.pipeline = 16;  // room for the backlog a reconnect resends
  base.reconnect = true;
  base.targets = &targets;
  base.settle_ns = 10'000'000'000;
  base.connect_in_flight = 64;
  base.stop = &abort_;
  uint32_t first = 0;
  for (int t = 0; t < options.threads; ++t) {
    const int n = options.conns / options.threads + (t < options.conns % options.threads ? 1 : 0);
    bench::WorkerOptions o = base;
    o.rate = n / absl::ToDoubleSeconds(options.period);  // one frame per period per connection
    workers_.push_back(std::make_unique<bench::Worker>(o, payload_, first, n));
    first += static_cast<uint32_t>(n);
  }
}

ClientFleet::~ClientFleet() {
  abort_ = true;
  go_ = true;
  for (std::thread& t : threads_) t.join();
}

absl::Status ClientFleet::Start() {
  const int64_t connect_deadline = bench::NowNs() + 20'000'000'000;
  for (auto& w : workers_) {
    threads_.emplace_back([this, worker = w.get(), connect_deadline] {
      worker->Connect(connect_deadline);
      connected_.fetch_add(1);
      while (!go_.load()) absl::SleepFor(absl::Milliseconds(1));
      worker->Run(clock_);
      worker->CloseAll();
    });
  }
  while (connected_.load() < static_cast<int>(workers_.size())) absl::SleepFor(absl::Milliseconds(5));
  int established = 0;
  for (const auto& w : workers_) established += w->counters().established.load();
  clock_.start_ns = bench::NowNs();
  clock_.measure_ns = clock_.start_ns;
  clock_.end_ns = clock_.start_ns + absl::ToInt64Nanoseconds(options_.traffic);
  traffic_end_ = absl::Now() + options_.traffic;
  go_ = true;
  if (established != options_.conns) {
    return absl::UnavailableError(absl::StrFormat("%d of %d clients connected", established, options_.conns));
  }
  return absl::OkStatus();
}

ClientTotals ClientFleet::Finish() {
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  ClientTotals totals;
  totals.conns = options_.conns;
  for (const auto& w : workers_) {
    const bench::WorkerCounters& c = w->counters();
    totals.established += c.established.load();
    totals.completed += c.completed.load();
    totals.reconnects += c.reconnects.load();
    totals.eofs += c.eofs.load();
    totals.resets += c.resets.load();
    totals.refused += c.refused.load();
    totals.resent += c.resent.load();
    totals.failed += c.failed.load();
    totals.lost += c.lost_requests.load();
    totals.mismatched += c.errors[bench::kMismatch].load();
    totals.duplicated += c.errors[bench::kDuplicate].load();
    for (const auto& e : c.errors) totals.errors += e.load();
  }
  return totals;
}

}  // namespace gateway::testing
