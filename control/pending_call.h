// PendingCall: a unary gRPC call answered later from another thread (a
// reactor's reply), or at its deadline, whichever comes first; and
// FinishWith for calls answered at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"

namespace gateway::control {

// Thread-safe: the first of Answer() (the gateway's reply) and OnCancel()
// (the deadline passed, the client went away or the server is shutting
// down) finishes the call; the other is ignored. Owned by itself until gRPC
// is done with it and by the pending answer, so a late answer finds it
// alive.
class PendingCall final : public grpc::ServerUnaryReactor {
 public:
  static std::shared_ptr<PendingCall> Create(grpc::CallbackServerContext* context);

  // Runs `fill` (which writes the response) and finishes with `status`,
  // unless the call has already finished.
  void Answer(const absl::Status& status, absl::FunctionRef<void()> fill);

  void OnCancel() override;
  void OnDone() override;

  // Calls created and not yet answered, over the process (for tests).
  static int64_t Unfinished();

 private:
  explicit PendingCall(grpc::CallbackServerContext* context) : deadline_(context->deadline()) {}

  const std::chrono::system_clock::time_point deadline_;
  std::shared_ptr<PendingCall> self_;  // released in OnDone
  std::mutex mu_;
  bool finished_ = false;  // guarded by mu_
};

// Finishes `context`'s call with `status` at once.
grpc::ServerUnaryReactor* FinishWith(grpc::CallbackServerContext* context, const absl::Status& status);

}  // namespace gateway::control
