// Building blocks for the collectors: a family, and gauge, counter and
// histogram samples appended to it. Header-only, for metrics/*.cc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "gateway/reactor_stats.h"
#include "prometheus/metric_family.h"

namespace gateway::metrics_internal {

inline prometheus::MetricFamily Family(const char* name, const char* help, prometheus::MetricType type) {
  return prometheus::MetricFamily{name, help, type, {}};
}

inline void AddGauge(prometheus::MetricFamily* family, std::vector<prometheus::ClientMetric::Label> labels,
                     double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.gauge.value = value;
  family->metric.push_back(std::move(metric));
}

inline void AddCounter(prometheus::MetricFamily* family, std::vector<prometheus::ClientMetric::Label> labels,
                       double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.counter.value = value;
  family->metric.push_back(std::move(metric));
}

// Converts the data plane's non-cumulative buckets (N finite bounds, then
// +Inf) to Prometheus's cumulative ones; the count is the +Inf bucket, so the
// sample is self-consistent even while the data plane keeps observing.
template <size_t N>
void AddHistogram(prometheus::MetricFamily* family, std::vector<prometheus::ClientMetric::Label> labels,
                  const std::array<double, N>& bounds, const std::array<uint64_t, N + 1>& buckets, double sum) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i < N; ++i) {
    cumulative += buckets[i];
    metric.histogram.bucket.push_back({cumulative, bounds[i]});
  }
  cumulative += buckets[N];
  metric.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  metric.histogram.sample_count = cumulative;
  metric.histogram.sample_sum = sum;
  family->metric.push_back(std::move(metric));
}

// Reads a reactor's histogram once into `buckets` (added to what is there)
// and returns its sum.
template <size_t N>
double AddBuckets(const RelaxedHistogram<N>& h, std::array<uint64_t, N + 1>* buckets) {
  for (size_t i = 0; i <= N; ++i) (*buckets)[i] += h.bucket(i);
  return h.sum();
}

template <size_t N>
void AddHistogram(prometheus::MetricFamily* family, std::vector<prometheus::ClientMetric::Label> labels,
                  const RelaxedHistogram<N>& h) {
  std::array<uint64_t, N + 1> buckets{};
  const double sum = AddBuckets(h, &buckets);
  AddHistogram(family, std::move(labels), h.bounds(), buckets, sum);
}

}  // namespace gateway::metrics_internal
