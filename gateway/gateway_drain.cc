// The Gateway facade's DrainConnections: pick the oldest connections across
// reactors, then have each reactor drain its own at the times given.
#include <algorithm>
#include <cmath>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/gateway.h"
#include "gateway/reactor.h"
#include "gateway/sync_wait.h"

namespace gateway {
namespace {

absl::Status ValidateDrainQuery(const DrainQuery& query) {
  if (query.fraction.has_value() == query.count.has_value()) {
    return absl::InvalidArgumentError("give either a fraction or a count of connections to drain");
  }
  if (query.fraction.has_value() && !(*query.fraction > 0 && *query.fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("fraction must be in (0, 1], got ", *query.fraction));
  }
  if (query.min_age < absl::ZeroDuration()) return absl::InvalidArgumentError("min_age must be >= 0");
  if (query.spread < absl::ZeroDuration()) return absl::InvalidArgumentError("spread must be >= 0");
  return absl::OkStatus();
}

// A candidate and the reactor that owns it.
struct Picked {
  Reactor::DrainCandidate candidate;
  int reactor;
};

}  // namespace

void Gateway::DrainConnections(const DrainQuery& query, Done<DrainResult> done) {
  if (absl::Status valid = ValidateDrainQuery(query); !valid.ok()) return std::move(done)(valid);
  if (blocking_ != nullptr) {
    return std::move(done)(absl::FailedPreconditionError(
        "DrainConnections needs a reactor model: the blocking model closes connections only one by one"));
  }
  if (stopping_.load(std::memory_order_acquire)) {
    return std::move(done)(absl::FailedPreconditionError("the gateway is shutting down: every connection drains"));
  }
  struct Gathered {
    std::mutex mu;
    std::vector<Picked> candidates;  // guarded by mu
  };
  auto gathered = std::make_shared<Gathered>();
  const int64_t cut_off_ns = MonotonicNowNs() - absl::ToInt64Nanoseconds(std::min(query.min_age, absl::Hours(1e5)));
  RunOnAllReactorsNow(
      [gathered, cut_off_ns](Reactor& r) {
        std::vector<Reactor::DrainCandidate> mine = r.DrainCandidates(cut_off_ns);
        std::lock_guard<std::mutex> lock(gathered->mu);
        for (const Reactor::DrainCandidate& c : mine) gathered->candidates.push_back({c, r.index()});
      },
      [this, gathered, query, done = std::move(done)](absl::Status status) mutable {
        if (!status.ok()) return std::move(done)(std::move(status));
        std::vector<Picked> all;
        {
          std::lock_guard<std::mutex> lock(gathered->mu);
          all = std::move(gathered->candidates);
        }
        DrainResult result;
        result.matching = all.size();
        result.selected = query.count.has_value()
                              ? std::min<uint64_t>(*query.count, all.size())
                              : static_cast<uint64_t>(std::ceil(*query.fraction * static_cast<double>(all.size())));
        result.selected = std::min<uint64_t>(result.selected, all.size());
        std::sort(all.begin(), all.end(), [](const Picked& a, const Picked& b) {
          return a.candidate.opened_ns != b.candidate.opened_ns ? a.candidate.opened_ns < b.candidate.opened_ns
                                                                : a.candidate.fd < b.candidate.fd;
        });
        // Oldest first, evenly over the window.
        std::vector<std::vector<DrainSchedule::Entry>> per_reactor(reactors_.size());
        const int64_t now = MonotonicNowNs();
        const int64_t spread_ns = absl::ToInt64Nanoseconds(query.spread);
        for (uint64_t i = 0; i < result.selected; ++i) {
          const Picked& p = all[i];
          const int64_t offset = result.selected > 1
                                     ? static_cast<int64_t>(static_cast<double>(spread_ns) * static_cast<double>(i) /
                                                            static_cast<double>(result.selected - 1))
                                     : 0;
          per_reactor[p.reactor].push_back({now + offset, p.candidate.fd, p.candidate.id, CloseReason::kDrained});
        }
        auto schedule = std::make_shared<std::vector<std::vector<DrainSchedule::Entry>>>(std::move(per_reactor));
        RunOnAllReactorsNow([schedule](Reactor& r) { r.ScheduleDrains((*schedule)[r.index()]); },
                            [result, done = std::move(done)](absl::Status status) mutable {
                              if (!status.ok()) return std::move(done)(std::move(status));
                              std::move(done)(result);
                            });
      });
}

absl::StatusOr<DrainResult> Gateway::DrainConnections(const DrainQuery& query) {
  return WaitFor<absl::StatusOr<DrainResult>>(
      [&](Done<DrainResult> done) { DrainConnections(query, std::move(done)); });
}

}  // namespace gateway
