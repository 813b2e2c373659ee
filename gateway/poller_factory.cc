// MakePoller and ProbeIoModel: the one place that knows every back-end.
#include <memory>

#include "absl/strings/str_cat.h"
#include "gateway/epoll_poller.h"
#include "gateway/poll_poller.h"
#include "gateway/poller.h"
#include "gateway/select_poller.h"
#include "gateway/signal_poller.h"
#include "gateway/uring_poller.h"
#include "gateway/uring_setup.h"

namespace gateway {
namespace {

template <typename T>
absl::StatusOr<std::unique_ptr<Poller>> Upcast(absl::StatusOr<std::unique_ptr<T>> poller) {
  if (!poller.ok()) return poller.status();
  return std::unique_ptr<Poller>(*std::move(poller));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Poller>> MakePoller(IoModel model, TriggerMode trigger_mode) {
  switch (model) {
    case IoModel::kEpoll: return std::make_unique<EpollPoller>(trigger_mode);
    case IoModel::kSelect: return std::make_unique<SelectPoller>();
    case IoModel::kPoll: return std::make_unique<PollPoller>();
    case IoModel::kSignal: return Upcast(SignalPoller::Create());
    case IoModel::kIoUring: return Upcast(UringPoller::Create());
    default: break;
  }
  return absl::UnimplementedError(absl::StrCat("the ", IoModelName(model), " back-end is not built in"));
}

absl::Status ProbeIoModel(IoModel model) {
  switch (model) {
    case IoModel::kEpoll:
    case IoModel::kSelect:
    case IoModel::kPoll: return absl::OkStatus();
    // Blocks the model's signals in the calling thread (Gateway::Create: the
    // main thread, before any reactor starts), so every later thread has them
    // blocked too.
    case IoModel::kSignal: return PrepareSignalModel();
    case IoModel::kIoUring: return ProbeUring();
    case IoModel::kBlocking: return absl::OkStatus();  // no poller: the gateway runs a BlockingServer
    default: break;
  }
  return absl::UnimplementedError(absl::StrCat("the ", IoModelName(model), " back-end is not built in"));
}

}  // namespace gateway
