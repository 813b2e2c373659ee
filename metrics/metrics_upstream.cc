// Per-backend series come from one ListBackends() picture per scrape, so the
// families of one scrape agree with each other, and a backend removed since
// the last scrape is simply not in it.
#include "metrics/metrics_upstream.h"

#include <string>
#include <utility>

#include "metrics/metric_families.h"

namespace gateway {
namespace {

using metrics_internal::AddCounter;
using metrics_internal::AddGauge;
using metrics_internal::AddHistogram;
using metrics_internal::Family;
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Errors no backend is to blame for: counted per reactor, exported as
// gateway_upstream_unrouted_total.
bool IsUnrouted(UpstreamError error) { return error == UpstreamError::kNoBackend || error == UpstreamError::kOverload; }

ClientMetric::Label BackendLabel(const BackendInfo& b) { return {"backend", b.address}; }

// A family with one sample per backend, read by `get`.
template <typename Get>
MetricFamily PerBackend(const std::vector<BackendInfo>& backends, const char* name, const char* help, MetricType type,
                        Get get) {
  MetricFamily family = Family(name, help, type);
  for (const BackendInfo& b : backends) {
    const double value = static_cast<double>(get(b));
    if (type == MetricType::Counter) {
      AddCounter(&family, {BackendLabel(b)}, value);
    } else {
      AddGauge(&family, {BackendLabel(b)}, value);
    }
  }
  return family;
}

void AppendCounters(const std::vector<BackendInfo>& backends, std::vector<MetricFamily>* out) {
  out->push_back(PerBackend(backends, "gateway_upstream_requests_total", "Requests written to the backend.",
                            MetricType::Counter, [](const BackendInfo& b) { return b.requests; }));
  out->push_back(PerBackend(backends, "gateway_upstream_responses_total",
                            "Responses from the backend forwarded to clients.", MetricType::Counter,
                            [](const BackendInfo& b) { return b.responses; }));
  MetricFamily errors = Family("gateway_upstream_errors_total",
                               "Upstream errors blamed on the backend, by reason: timeout and reset (a request "
                               "written and never answered: the client got the error response), connect (a "
                               "connect failed; its requests went elsewhere), protocol (a malformed response).",
                               MetricType::Counter);
  for (const BackendInfo& b : backends) {
    for (int e = 0; e < kNumUpstreamErrors; ++e) {
      const auto error = static_cast<UpstreamError>(e);
      // The unrouted reasons are never a backend's (see the unrouted family).
      if (IsUnrouted(error) && b.errors[e] == 0) continue;
      AddCounter(&errors, {BackendLabel(b), {"reason", std::string(UpstreamErrorName(error))}},
                 static_cast<double>(b.errors[e]));
    }
  }
  out->push_back(std::move(errors));
  out->push_back(PerBackend(backends, "gateway_upstream_redispatched_total",
                            "Requests moved from the backend to another before being written to it.",
                            MetricType::Counter, [](const BackendInfo& b) { return b.redispatched; }));
  out->push_back(PerBackend(backends, "gateway_upstream_ejections_total",
                            "Times the backend was ejected after consecutive errors or timeouts.", MetricType::Counter,
                            [](const BackendInfo& b) { return b.ejections; }));
  MetricFamily probes =
      Family("gateway_upstream_probes_total", "Active health probes of the backend, by result.", MetricType::Counter);
  for (const BackendInfo& b : backends) {
    AddCounter(&probes, {BackendLabel(b), {"result", "ok"}}, static_cast<double>(b.probes_ok));
    AddCounter(&probes, {BackendLabel(b), {"result", "failed"}}, static_cast<double>(b.probes_failed));
  }
  out->push_back(std::move(probes));
}

void AppendGauges(const std::vector<BackendInfo>& backends, std::vector<MetricFamily>* out) {
  out->push_back(PerBackend(backends, "gateway_upstream_inflight",
                            "Requests written to the backend and not answered yet.", MetricType::Gauge,
                            [](const BackendInfo& b) { return b.inflight; }));
  out->push_back(PerBackend(backends, "gateway_upstream_pending", "Requests queued for the backend, not written yet.",
                            MetricType::Gauge, [](const BackendInfo& b) { return b.pending; }));
  out->push_back(PerBackend(backends, "gateway_upstream_connections",
                            "Upstream connections open to the backend (all reactors).", MetricType::Gauge,
                            [](const BackendInfo& b) { return b.connections; }));
  out->push_back(PerBackend(backends, "gateway_upstream_weight", "The backend's weight (round_robin).",
                            MetricType::Gauge, [](const BackendInfo& b) { return b.weight; }));
  out->push_back(PerBackend(backends, "gateway_upstream_healthy",
                            "1 while the backend is healthy (takes new requests), else 0.", MetricType::Gauge,
                            [](const BackendInfo& b) { return b.state == BackendState::kHealthy ? 1 : 0; }));
  MetricFamily state =
      Family("gateway_upstream_backend_state",
             "1 for the backend's current state (healthy, unhealthy, draining, ejected), 0 for the others.",
             MetricType::Gauge);
  for (const BackendInfo& b : backends) {
    for (int s = 0; s < kNumBackendStates; ++s) {
      const auto each = static_cast<BackendState>(s);
      AddGauge(&state, {BackendLabel(b), {"state", std::string(BackendStateName(each))}}, each == b.state ? 1 : 0);
    }
  }
  out->push_back(std::move(state));
}

void AppendReactorTotals(const std::vector<const ReactorStats*>& reactors, std::vector<MetricFamily>* out) {
  MetricFamily unrouted = Family("gateway_upstream_unrouted_total",
                                 "Requests answered with the error response without reaching a backend, by reason: "
                                 "no_backend (none healthy), overload (every healthy backend's queue full).",
                                 MetricType::Counter);
  for (int e = 0; e < kNumUpstreamErrors; ++e) {
    const auto error = static_cast<UpstreamError>(e);
    if (!IsUnrouted(error)) continue;
    uint64_t total = 0;
    for (const ReactorStats* r : reactors) total += r->upstream_errors[e].Get();
    AddCounter(&unrouted, {{"reason", std::string(UpstreamErrorName(error))}}, static_cast<double>(total));
  }
  out->push_back(std::move(unrouted));

  MetricFamily frames = Family("gateway_upstream_write_frames",
                               "Frames carried by one write to an upstream connection (write combining), all "
                               "reactors.",
                               MetricType::Histogram);
  std::array<uint64_t, kUpstreamBatchBounds.size() + 1> buckets{};
  double sum = 0;
  for (const ReactorStats* r : reactors) sum += metrics_internal::AddBuckets(r->upstream_write_frames, &buckets);
  AddHistogram(&frames, {}, kUpstreamBatchBounds, buckets, sum);
  out->push_back(std::move(frames));
}

}  // namespace

void AppendUpstreamFamilies(const std::vector<BackendInfo>& backends, const std::vector<const ReactorStats*>& reactors,
                            std::vector<MetricFamily>* out) {
  AppendCounters(backends, out);
  AppendGauges(backends, out);
  MetricFamily duration =
      Family("gateway_upstream_request_duration_seconds",
             "Time from a request's write to the backend until its response is whole.", MetricType::Histogram);
  for (const BackendInfo& b : backends) {
    AddHistogram(&duration, {BackendLabel(b)}, kUpstreamDurationBounds, b.duration_buckets, b.duration_sum_seconds);
  }
  out->push_back(std::move(duration));
  AppendReactorTotals(reactors, out);
}

}  // namespace gateway
