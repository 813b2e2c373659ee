// MakePoller and ProbeIoModel: the one place that knows every back-end.
#include <memory>

#include "absl/strings/str_cat.h"
#include "gateway/epoll_poller.h"
#include "gateway/poller.h"

namespace gateway {

absl::StatusOr<std::unique_ptr<Poller>> MakePoller(IoModel model, TriggerMode trigger_mode) {
  switch (model) {
    case IoModel::kEpoll: return std::make_unique<EpollPoller>(trigger_mode);
    default: break;
  }
  return absl::UnimplementedError(absl::StrCat("the ", IoModelName(model), " back-end is not built in"));
}

absl::Status ProbeIoModel(IoModel model) {
  switch (model) {
    case IoModel::kEpoll: return absl::OkStatus();
    case IoModel::kBlocking: return absl::OkStatus();  // no poller: the gateway runs a BlockingServer
    default: break;
  }
  return absl::UnimplementedError(absl::StrCat("the ", IoModelName(model), " back-end is not built in"));
}

}  // namespace gateway
