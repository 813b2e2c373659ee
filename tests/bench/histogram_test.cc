// LatencyHistogram: bucket geometry, exactness for small values, bounded
// relative error, percentiles, merge and clamping.
#include "bench/histogram.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>

namespace bench {
namespace {

TEST(LatencyHistogramTest, BucketsTileTheRangeWithoutGaps) {
  const int n = LatencyHistogram::NumBuckets();
  ASSERT_GT(n, 256);
  for (int i = 0; i + 1 < n; ++i) {
    ASSERT_EQ(LatencyHistogram::BucketHighest(i) + 1, LatencyHistogram::BucketLowest(i + 1)) << "bucket " << i;
  }
  EXPECT_EQ(LatencyHistogram::BucketHighest(n - 1), LatencyHistogram::kMaxValue);
}

TEST(LatencyHistogramTest, EveryValueLandsInItsBucket) {
  for (uint64_t v : std::initializer_list<uint64_t>{0, 1, 127, 128, 255, 256, 257, 511, 512, 1000, 123456789,
                                                    (uint64_t{1} << 39) + 12345, LatencyHistogram::kMaxValue}) {
    const int i = LatencyHistogram::BucketIndex(v);
    EXPECT_LE(LatencyHistogram::BucketLowest(i), v) << v;
    EXPECT_GE(LatencyHistogram::BucketHighest(i), v) << v;
  }
}

TEST(LatencyHistogramTest, SmallValuesAreExactLargeOnesWithin1Percent) {
  for (uint64_t v = 0; v < 256; ++v) EXPECT_EQ(LatencyHistogram::BucketIndex(v), static_cast<int>(v));
  for (int i = 256; i < LatencyHistogram::NumBuckets(); ++i) {
    const double width =
        static_cast<double>(LatencyHistogram::BucketHighest(i) - LatencyHistogram::BucketLowest(i) + 1);
    EXPECT_LE(width / static_cast<double>(LatencyHistogram::BucketLowest(i)), 1.0 / 128) << "bucket " << i;
  }
}

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0);
}

TEST(LatencyHistogramTest, PercentilesOfExactValues) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.Percentile(0.5), 50u);
  EXPECT_EQ(h.Percentile(0.9), 90u);
  EXPECT_EQ(h.Percentile(0.99), 99u);
  EXPECT_EQ(h.Percentile(1.0), 100u);
  EXPECT_EQ(h.Percentile(0.0), 1u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogramTest, PercentilesOfLargeValuesWithinBucketError) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 1'000'000; ++v) h.Record(v * 1000);  // 1 us .. 1 s in ns
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    const double truth = q * 1e9;
    const double got = static_cast<double>(h.Percentile(q));
    EXPECT_GE(got, truth) << q;  // reported as the bucket's highest value
    EXPECT_LE(got, truth * (1 + 1.0 / 128)) << q;
  }
  EXPECT_EQ(h.Percentile(1.0), 1'000'000'000u);  // max is exact
}

TEST(LatencyHistogramTest, PercentileNeverExceedsMax) {
  LatencyHistogram h;
  h.Record(1'000'001);  // its bucket reaches beyond it
  EXPECT_EQ(h.Percentile(0.5), 1'000'001u);
}

TEST(LatencyHistogramTest, RecordWithCountAndMerge) {
  LatencyHistogram a, b;
  a.Record(10, 3);
  b.Record(20, 1);
  b.Record(5000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 5u);
  EXPECT_EQ(a.min(), 10u);
  EXPECT_EQ(a.max(), 5000u);
  EXPECT_EQ(a.Percentile(0.6), 10u);
  EXPECT_EQ(a.Percentile(0.8), 20u);
  EXPECT_DOUBLE_EQ(a.mean(), (30 + 20 + 5000) / 5.0);
  a.Record(7, 0);  // no-op
  EXPECT_EQ(a.count(), 5u);
}

TEST(LatencyHistogramTest, HugeValuesClampAndResetEmpties) {
  LatencyHistogram h;
  h.Record(UINT64_MAX);
  EXPECT_EQ(h.max(), LatencyHistogram::kMaxValue);
  EXPECT_EQ(h.Percentile(0.5), LatencyHistogram::kMaxValue);
  h.Reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

}  // namespace
}  // namespace bench
