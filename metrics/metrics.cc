// Scrape-time aggregation: every family is built fresh from the reactors'
// relaxed atomics on each Collect(), so nothing here is shared with the data
// plane's hot path. Per-reactor series carry a `reactor` label; dashboards
// aggregate them with sum().
#include "metrics/metrics.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gateway/build_info.h"
#include "gateway/host_port.h"
#include "metrics/metric_families.h"
#include "metrics/metrics_process.h"
#include "metrics/metrics_upstream.h"
#include "prometheus/exposer.h"

namespace gateway {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

using metrics_internal::AddCounter;
using metrics_internal::AddGauge;
using metrics_internal::AddHistogram;
using metrics_internal::Family;

ClientMetric::Label ReactorLabel(int reactor) { return {"reactor", absl::StrCat(reactor)}; }

// A per-reactor counter family: one sample per reactor, read by `get`.
template <typename Get>
MetricFamily PerReactorCounter(const Gateway& gw, const char* name, const char* help, Get get) {
  MetricFamily family = Family(name, help, MetricType::Counter);
  for (int r = 0; r < gw.num_reactors(); ++r) {
    AddCounter(&family, {ReactorLabel(r)}, static_cast<double>(get(gw.reactor_stats(r))));
  }
  return family;
}

// civetweb reports why it could not start only through this callback; the
// Exposer is built on the calling thread, so a thread_local carries the
// message to Start(). Later (runtime) messages are dropped, as civetweb's
// default does without an error log file.
thread_local std::string* startup_error = nullptr;

int CaptureCivetwebLog(const mg_connection*, const char* message) {
  if (startup_error != nullptr && startup_error->empty()) *startup_error = message;
  return 1;
}

// The HTTP server's limits. civetweb serves each connection on one worker
// thread from accept to close, and its defaults (prometheus-cpp's 2 workers,
// a 30 s request timeout) let two silent connections time every scrape out.
// Enough workers that dozens of idle or slow clients still leave one free, a
// request (its whole header; also each write of the response) due within a
// second so a worker held by a silent client is back after about a second,
// one request per connection, and a listen backlog deep enough that a burst
// of connections waits in the kernel instead of having its SYNs dropped.
constexpr int kMetricsThreads = 64;
constexpr int kMetricsRequestTimeoutMs = 1000;
constexpr int kMetricsListenBacklog = 1024;

std::vector<std::string> CivetwebOptions(absl::string_view listen_address) {
  // Name, value, name, value, ...
  return {"listening_ports",    std::string(listen_address),
          "num_threads",        absl::StrCat(kMetricsThreads),
          "request_timeout_ms", absl::StrCat(kMetricsRequestTimeoutMs),
          "enable_keep_alive",  "no",
          "listen_backlog",     absl::StrCat(kMetricsListenBacklog)};
}

// Checks "host:port" the way civetweb will read it, so a typo gets a clear
// message instead of civetweb's.
absl::Status ValidateListenAddress(absl::string_view address) {
  const absl::StatusOr<HostPort> split = SplitHostPort(address);
  if (!split.ok() || split->host.empty() || address.front() == '[' || !ParsePort(split->port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics_listen: expected IPv4-address:port or hostname:port (IPv6 is not supported), got '", address, "'"));
  }
  return absl::OkStatus();
}

// Returns an address that reaches a server bound to `host`:`port` (loopback
// for the wildcard address), or nullopt if `host` does not resolve.
std::optional<sockaddr_in> LocalAddressOf(absl::string_view host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const std::string name(host == "0.0.0.0" ? "127.0.0.1" : host);
  if (inet_pton(AF_INET, name.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) return std::nullopt;
  addr.sin_addr = reinterpret_cast<const sockaddr_in*>(found->ai_addr)->sin_addr;
  freeaddrinfo(found);
  return addr;
}

// Connects and hangs up, so civetweb's accept loop (which otherwise notices a
// stop only when its 2 s poll() times out) wakes up and sees it.
void Poke(const sockaddr_in& addr) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  close(fd);
}

}  // namespace

BuildInfo CurrentBuildInfo() {
  return BuildInfo{build_info::kVersion, build_info::kRevision, build_info::kBuildType, build_info::kCompiler};
}

GatewayCollector::GatewayCollector(const Gateway* gateway, BuildInfo build_info)
    : gateway_(gateway), build_info_(std::move(build_info)) {}

std::vector<MetricFamily> GatewayCollector::Collect() const {
  std::vector<MetricFamily> out;
  out.reserve(48);
  MetricFamily build =
      Family("gateway_build_info", "Always 1; labels say what the running binary was built from.", MetricType::Gauge);
  AddGauge(&build,
           {{"version", build_info_.version},
            {"revision", build_info_.revision},
            {"build_type", build_info_.build_type},
            {"compiler", build_info_.compiler}},
           1);
  out.push_back(std::move(build));
  CollectConnections(&out);
  CollectTraffic(&out);
  CollectLoop(&out);
  CollectTriggerMode(&out);
  CollectIoModel(&out);
  CollectUpstream(&out);
  return out;
}

void GatewayCollector::CollectConnections(std::vector<MetricFamily>* out) const {
  const Gateway& gw = *gateway_;
  MetricFamily active = Family("gateway_connections_active", "Open data-plane connections.", MetricType::Gauge);
  AddGauge(&active, {}, static_cast<double>(gw.active_connections()));
  out->push_back(std::move(active));
  MetricFamily draining =
      Family("gateway_draining", "1 from SIGTERM on (readiness NOT_SERVING, connections being closed), else 0.",
             MetricType::Gauge);
  AddGauge(&draining, {}, gw.draining() ? 1 : 0);
  out->push_back(std::move(draining));

  MetricFamily by_state = Family("gateway_connections",
                                 "Open data-plane connections by reactor and state (accept, read, process, write "
                                 "(also paused by backpressure), closing).",
                                 MetricType::Gauge);
  for (int r = 0; r < gw.num_reactors(); ++r) {
    const ReactorStats& stats = gw.reactor_stats(r);
    for (int s = 0; s < kNumConnectionStates; ++s) {
      const std::string state(ConnectionStateName(static_cast<ConnectionState>(s)));
      AddGauge(&by_state, {ReactorLabel(r), {"state", state}}, static_cast<double>(stats.by_state[s].Get()));
    }
  }
  out->push_back(std::move(by_state));

  out->push_back(PerReactorCounter(gw, "gateway_connections_accepted_total", "Connections accepted by the reactor.",
                                   [](const ReactorStats& s) { return s.accepted.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_connections_rejected_total",
                                   "Connections closed at once on accept: over --max_connections, during shutdown, "
                                   "shed when out of file descriptors, or on an fd >= 1024 in select mode.",
                                   [](const ReactorStats& s) { return s.rejected.Get(); }));

  MetricFamily closed =
      Family("gateway_connections_closed_total", "Connections closed, by reactor and reason.", MetricType::Counter);
  for (int r = 0; r < gw.num_reactors(); ++r) {
    const ReactorStats& stats = gw.reactor_stats(r);
    for (int c = 0; c < kNumCloseReasons; ++c) {
      const std::string reason(CloseReasonName(static_cast<CloseReason>(c)));
      AddCounter(&closed, {ReactorLabel(r), {"reason", reason}}, static_cast<double>(stats.closed[c].Get()));
    }
  }
  out->push_back(std::move(closed));
}

void GatewayCollector::CollectTraffic(std::vector<MetricFamily>* out) const {
  const Gateway& gw = *gateway_;
  out->push_back(PerReactorCounter(gw, "gateway_frames_received_total", "Complete request frames received.",
                                   [](const ReactorStats& s) { return s.frames_in.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_frames_sent_total", "Response frames written in full.",
                                   [](const ReactorStats& s) { return s.frames_out.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_bytes_received_total", "Bytes read from clients.",
                                   [](const ReactorStats& s) { return s.bytes_in.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_bytes_sent_total", "Bytes written to clients.",
                                   [](const ReactorStats& s) { return s.bytes_out.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_protocol_errors_total",
                                   "Malformed frame headers (each closes its connection).",
                                   [](const ReactorStats& s) { return s.protocol_errors.Get(); }));
  if (!gw.options().reactor.measure_latency) return;  // no data: leave it out rather than report zeros
  MetricFamily duration =
      Family("gateway_request_duration_seconds",
             "Time from a request frame's last byte read to its response's last byte written.", MetricType::Histogram);
  for (int r = 0; r < gw.num_reactors(); ++r) {
    AddHistogram(&duration, {ReactorLabel(r)}, gw.reactor_stats(r).request_duration);
  }
  out->push_back(std::move(duration));
}

void GatewayCollector::CollectLoop(std::vector<MetricFamily>* out) const {
  const Gateway& gw = *gateway_;
  out->push_back(PerReactorCounter(gw, "gateway_accept_errors_total",
                                   "accept() failures other than EAGAIN (EMFILE, ENFILE, ENOBUFS, ...).",
                                   [](const ReactorStats& s) { return s.accept_errors.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_accept_backoffs_total",
                                   "Times accepting paused for 100 ms: out of file descriptors with no spare fd "
                                   "to shed a client with, or out of kernel memory.",
                                   [](const ReactorStats& s) { return s.accept_backoffs.Get(); }));
  out->push_back(PerReactorCounter(gw, "gateway_epoll_wakeups_total", "epoll_wait() returns.",
                                   [](const ReactorStats& s) { return s.wakeups.Get(); }));
  MetricFamily queued = Family("gateway_queued_bytes",
                               "Bytes of buffer blocks held by the reactor's connections: queued output and "
                               "partial frames. Reading pauses everywhere while the sum exceeds --max_queued_bytes.",
                               MetricType::Gauge);
  for (int r = 0; r < gw.num_reactors(); ++r) {
    AddGauge(&queued, {ReactorLabel(r)}, static_cast<double>(gw.reactor_stats(r).queued_bytes.Get()));
  }
  out->push_back(std::move(queued));
  MetricFamily events =
      Family("gateway_epoll_wait_events",
             "Events returned by one epoll_wait() (wakeups with no event are not observed).", MetricType::Histogram);
  for (int r = 0; r < gw.num_reactors(); ++r) {
    AddHistogram(&events, {ReactorLabel(r)}, gw.reactor_stats(r).epoll_events);
  }
  out->push_back(std::move(events));
}

void GatewayCollector::CollectTriggerMode(std::vector<MetricFamily>* out) const {
  const TriggerMode mode = gateway_->trigger_mode();
  MetricFamily current =
      Family("gateway_trigger_mode", "1 for the epoll trigger mode in use, 0 for the other.", MetricType::Gauge);
  for (TriggerMode m : {TriggerMode::kEdge, TriggerMode::kLevel}) {
    AddGauge(&current, {{"mode", std::string(TriggerModeName(m))}}, m == mode ? 1 : 0);
  }
  out->push_back(std::move(current));
  MetricFamily switches = Family("gateway_trigger_mode_switches_total",
                                 "Trigger-mode switches made at runtime (requests that change nothing are not "
                                 "counted).",
                                 MetricType::Counter);
  AddCounter(&switches, {}, static_cast<double>(gateway_->trigger_mode_switches()));
  out->push_back(std::move(switches));
}

void GatewayCollector::CollectIoModel(std::vector<MetricFamily>* out) const {
  const IoModel model = gateway_->io_model();
  // Every model's series is always there, so a switch never makes one appear
  // or vanish (which would leave gaps in graphs and stale values in alerts).
  MetricFamily current = Family("gateway_io_model",
                                "1 for the IO model the reactors run (select, poll, epoll, io_uring, blocking, "
                                "signal), 0 for the others.",
                                MetricType::Gauge);
  for (int i = 0; i < kNumIoModels; ++i) {
    const auto m = static_cast<IoModel>(i);
    AddGauge(&current, {{"model", std::string(IoModelName(m))}}, m == model ? 1 : 0);
  }
  out->push_back(std::move(current));
  MetricFamily switches =
      Family("gateway_io_model_switches_total",
             "IO-model switches made at runtime (requests that change nothing are not counted).", MetricType::Counter);
  AddCounter(&switches, {}, static_cast<double>(gateway_->io_model_switches()));
  out->push_back(std::move(switches));
  MetricFamily duration = Family("gateway_io_model_switch_duration_seconds",
                                 "How long the last IO-model switch took, from the first reactor starting it to the "
                                 "last one done; 0 before any.",
                                 MetricType::Gauge);
  AddGauge(&duration, {}, absl::ToDoubleSeconds(gateway_->last_io_model_switch_duration()));
  out->push_back(std::move(duration));
}

void GatewayCollector::CollectUpstream(std::vector<MetricFamily>* out) const {
  if (!gateway_->upstream_enabled()) return;
  // ListBackends() fails only outside upstream mode, ruled out above; were
  // it to fail, no backend would have series and the reactor totals still would.
  absl::StatusOr<std::vector<BackendInfo>> backends = gateway_->ListBackends();
  std::vector<const ReactorStats*> reactors;
  for (int r = 0; r < gateway_->num_reactors(); ++r) reactors.push_back(&gateway_->reactor_stats(r));
  AppendUpstreamFamilies(backends.ok() ? *backends : std::vector<BackendInfo>{}, reactors, out);
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(absl::string_view listen_address,
                                                                    const Gateway* gateway) {
  if (absl::Status valid = ValidateListenAddress(listen_address); !valid.ok()) return valid;
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  server->gateway_collector_ = std::make_shared<GatewayCollector>(gateway, CurrentBuildInfo());
  server->process_collector_ = std::make_shared<ProcessCollector>();

  CivetCallbacks callbacks;
  callbacks.log_message = &CaptureCivetwebLog;
  std::string error;
  startup_error = &error;
  try {
    // prometheus-cpp reports a failed bind by throwing; this is the edge
    // where that becomes a status.
    server->exposer_ = std::make_unique<prometheus::Exposer>(CivetwebOptions(listen_address), &callbacks);
  } catch (const std::exception& e) {
    startup_error = nullptr;
    if (error.empty()) error = absl::StrCat("cannot serve metrics on ", listen_address, ": ", e.what());
    return absl::UnavailableError(absl::StrCat("--metrics_listen: ", error));
  }
  startup_error = nullptr;
  const std::vector<int> ports = server->exposer_->GetListeningPorts();
  server->port_ = ports.empty() ? 0 : ports.front();
  server->wake_address_ = LocalAddressOf(SplitHostPort(listen_address)->host, server->port_);
  server->exposer_->RegisterCollectable(server->gateway_collector_);
  server->exposer_->RegisterCollectable(server->process_collector_);
  return server;
}

MetricsServer::~MetricsServer() {
  if (exposer_ == nullptr) return;
  // Stopping joins the HTTP threads before the collectors go. A scrape
  // connection keeps arriving until the accept loop has seen the stop: a
  // bounded number of pokes, as the loop wakes up by itself within 2 s.
  std::atomic<bool> stopped{false};
  std::thread waker;
  if (wake_address_) {
    waker = std::thread([&stopped, addr = *wake_address_] {
      for (int i = 0; i < 100 && !stopped.load(std::memory_order_acquire); ++i) {
        Poke(addr);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });
  }
  exposer_.reset();
  stopped.store(true, std::memory_order_release);
  if (waker.joinable()) waker.join();
}

}  // namespace gateway
