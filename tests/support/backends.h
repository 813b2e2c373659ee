// The data-plane back-ends tests run against: every IO model, and epoll in
// both trigger modes. Any thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "gateway/options.h"
#include "gateway/poller.h"
#include "gateway/types.h"

namespace gateway::testing {

struct Backend {
  IoModel model = IoModel::kEpoll;
  TriggerMode mode = TriggerMode::kEdge;  // epoll's; ignored by the others

  // "epoll_edge", "epoll_level", "poll", "select", "io_uring", "signal", "blocking".
  std::string Name() const {
    if (model == IoModel::kEpoll) return std::string("epoll_") + std::string(TriggerModeName(mode));
    return std::string(IoModelName(model));
  }
  // Sets the options' back-end.
  void ApplyTo(ReactorOptions* options) const {
    options->io_model = model;
    options->trigger_mode = mode;
  }
  friend std::ostream& operator<<(std::ostream& os, const Backend& b) { return os << b.Name(); }
};

// The reactor back-ends: the live-switchable four (epoll twice) and signal.
inline std::vector<Backend> ReactorBackends() {
  return {{IoModel::kEpoll, TriggerMode::kEdge},
          {IoModel::kEpoll, TriggerMode::kLevel},
          {IoModel::kPoll},
          {IoModel::kSelect},
          {IoModel::kIoUring},
          {IoModel::kSignal}};
}

// Every back-end, the thread-per-connection blocking model included.
inline std::vector<Backend> AllBackends() {
  std::vector<Backend> all = ReactorBackends();
  all.push_back({IoModel::kBlocking});
  return all;
}

// Test names: .../epoll_edge, .../io_uring, ...
struct BackendName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return info.param.Name();
  }
};

}  // namespace gateway::testing

// Skips the test where the back-end cannot run on this host (io_uring under
// a seccomp profile), saying why.
#define GATEWAY_SKIP_IF_UNAVAILABLE(backend)                                                               \
  do {                                                                                                     \
    if (absl::Status probe = ::gateway::ProbeIoModel((backend).model); !probe.ok()) GTEST_SKIP() << probe; \
  } while (0)
