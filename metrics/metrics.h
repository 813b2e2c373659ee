// Prometheus metrics for the gateway: a Collectable that reads the data
// plane's per-reactor lock-free counters at scrape time, and MetricsServer,
// which serves them (plus process_* metrics) as GET /metrics in the text
// exposition format through prometheus-cpp's pull exposer.
//
// The data plane is never touched per event by this code: each reactor keeps
// its own single-writer counters (gateway/reactor_stats.h), and a scrape only
// loads them with relaxed atomics and sums nothing on the hot path.
#pragma once

#include <netinet/in.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/gateway.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace prometheus {
class Exposer;
}

namespace gateway {

// Labels of gateway_build_info.
struct BuildInfo {
  std::string version;
  std::string revision;
  std::string build_type;
  std::string compiler;
};

// What this binary was built from (the generated gateway/build_info.h).
BuildInfo CurrentBuildInfo();

// Thread-safe: Collect() may run on any number of scrape threads at once; it
// only reads the gateway's atomics. Does not own the gateway, which must
// outlive it.
class GatewayCollector final : public prometheus::Collectable {
 public:
  GatewayCollector(const Gateway* gateway, BuildInfo build_info);

  // Returns every gateway_* family, each sample labelled by reactor where the
  // data plane keeps it per reactor.
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  void CollectConnections(std::vector<prometheus::MetricFamily>* out) const;
  void CollectTraffic(std::vector<prometheus::MetricFamily>* out) const;
  void CollectLoop(std::vector<prometheus::MetricFamily>* out) const;
  void CollectTriggerMode(std::vector<prometheus::MetricFamily>* out) const;
  void CollectIoModel(std::vector<prometheus::MetricFamily>* out) const;
  // gateway_upstream_*, in upstream mode only.
  void CollectUpstream(std::vector<prometheus::MetricFamily>* out) const;

  const Gateway* const gateway_;
  const BuildInfo build_info_;
};

// Thread-safe. Owns the HTTP server threads; stopping them (in the
// destructor) must happen before the gateway is destroyed.
class MetricsServer {
 public:
  // Starts serving GET /metrics on `listen_address` ("host:port", IPv4 or a
  // host name; port 0 picks a free one). INVALID_ARGUMENT for a malformed
  // address, UNAVAILABLE if it cannot be bound (e.g. the port is busy).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(absl::string_view listen_address, const Gateway* gateway);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Returns the bound port.
  int port() const { return port_; }

 private:
  MetricsServer() = default;

  std::shared_ptr<GatewayCollector> gateway_collector_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;
  std::optional<sockaddr_in> wake_address_;  // where a connect wakes civetweb's accept loop
};

}  // namespace gateway
