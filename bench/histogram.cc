// Bucket layout: index i < 256 holds exactly the value i. Above that a value
// with its highest set bit at position m (m >= 8) keeps its top 8 bits: with
// shift = m - 7, index = (shift + 1) * 128 + ((value >> shift) - 128). Each
// power-of-two range therefore maps onto 128 equal-width buckets.
#include "bench/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace bench {
namespace {

constexpr uint64_t kSubCount = uint64_t{1} << LatencyHistogram::kSubBucketBits;

}  // namespace

int LatencyHistogram::BucketIndex(uint64_t value) {
  if (value > kMaxValue) value = kMaxValue;
  if (value < 2 * kSubCount) return static_cast<int>(value);
  const int msb = 63 - std::countl_zero(value);
  const int shift = msb - kSubBucketBits;
  return static_cast<int>((static_cast<uint64_t>(shift) + 1) * kSubCount + ((value >> shift) - kSubCount));
}

uint64_t LatencyHistogram::BucketLowest(int index) {
  const uint64_t i = static_cast<uint64_t>(index);
  if (i < 2 * kSubCount) return i;
  const uint64_t shift = i / kSubCount - 1;
  return (kSubCount + i % kSubCount) << shift;
}

uint64_t LatencyHistogram::BucketHighest(int index) {
  const uint64_t i = static_cast<uint64_t>(index);
  if (i < 2 * kSubCount) return i;
  const uint64_t shift = i / kSubCount - 1;
  return BucketLowest(index) + (uint64_t{1} << shift) - 1;
}

int LatencyHistogram::NumBuckets() { return BucketIndex(kMaxValue) + 1; }

LatencyHistogram::LatencyHistogram() : buckets_(static_cast<size_t>(NumBuckets()), 0) {}

void LatencyHistogram::Record(uint64_t value, uint64_t count) {
  if (count == 0) return;
  if (value > kMaxValue) value = kMaxValue;
  buckets_[static_cast<size_t>(BucketIndex(value))] += count;
  count_ += count;
  sum_ += static_cast<unsigned __int128>(value) * count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::Reset() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = 0;
  sum_ = 0;
  min_ = UINT64_MAX;
  max_ = 0;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) return min();
  if (q >= 1) return max_;
  // The rank of the wanted recording, 1-based; ceil so p50 of {1,2} is 1.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(BucketHighest(static_cast<int>(i)), max_);
  }
  return max_;
}

}  // namespace bench
