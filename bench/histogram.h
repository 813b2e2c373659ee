// LatencyHistogram: a small HdrHistogram-like recorder of non-negative integer
// values (nanoseconds here) in log-bucketed linear sub-buckets. Values below
// 256 are exact; above, each bucket is at most 1/128 of its value wide, so a
// reported percentile is within 0.8% of the true one. Fixed size (~36 KiB),
// no allocation after construction, O(1) Record().
#pragma once

#include <cstdint>
#include <vector>

namespace bench {

// Thread-compatible: one writer; merge copies after the writers have stopped.
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;                        // 128 sub-buckets per power of two
  static constexpr uint64_t kMaxValue = (uint64_t{1} << 40) - 1;  // ~18 minutes in ns; larger values clamp

  LatencyHistogram();

  // Records `value` (clamped to kMaxValue) `count` times.
  void Record(uint64_t value, uint64_t count = 1);
  // Adds every recording of `other` to this one.
  void Merge(const LatencyHistogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ ? min_ : 0; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0; }

  // The smallest recorded-bucket value v such that at least `q` (0..1) of the
  // recordings are <= v, reported as the highest value of its bucket but
  // never above max(). 0 when empty. q <= 0 gives min(), q >= 1 gives max().
  uint64_t Percentile(double q) const;

  // Bucket geometry, exposed for tests.
  static int BucketIndex(uint64_t value);
  static uint64_t BucketLowest(int index);
  static uint64_t BucketHighest(int index);
  static int NumBuckets();

 private:
  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  unsigned __int128 sum_ = 0;
};

}  // namespace bench
