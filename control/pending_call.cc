#include "control/pending_call.h"

#include <atomic>
#include <utility>

#include "control/proto_convert.h"

namespace gateway::control {
namespace {

std::atomic<int64_t> unfinished_calls{0};

}  // namespace

std::shared_ptr<PendingCall> PendingCall::Create(grpc::CallbackServerContext* context) {
  auto call = std::shared_ptr<PendingCall>(new PendingCall(context));
  call->self_ = call;
  unfinished_calls.fetch_add(1, std::memory_order_relaxed);
  return call;
}

void PendingCall::Answer(const absl::Status& status, absl::FunctionRef<void()> fill) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
    if (status.ok()) fill();
  }
  unfinished_calls.fetch_sub(1, std::memory_order_relaxed);
  Finish(ToGrpcStatus(status));
}

void PendingCall::OnCancel() {
  // The client has its own status by now; this ends the call on our side.
  const bool deadline_passed = deadline_ <= std::chrono::system_clock::now();
  Answer(deadline_passed ? absl::DeadlineExceededError("the data plane did not answer before the deadline")
                         : absl::CancelledError("the call was cancelled"),
         [] {});
}

void PendingCall::OnDone() {
  std::shared_ptr<PendingCall> self = std::move(self_);  // may be the last owner
}

int64_t PendingCall::Unfinished() { return unfinished_calls.load(std::memory_order_relaxed); }

grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace gateway::control
