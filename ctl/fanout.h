// The fan-out: one call per target, all in parallel, each with its own
// deadline, and every target's outcome kept (a failure never hides the
// others' answers).
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "ctl/connect.h"
#include "ctl/targets.h"
#include "grpcpp/grpcpp.h"

namespace gateway::ctl {

// One target's answer, or why there is none. Plain value.
template <typename Response>
struct Outcome {
  Target target;
  absl::Status status;  // OK: `response` holds the answer
  Response response;
};

// Runs `job(i)` for i in [0, n) on up to `parallelism` threads; returns when
// all are done. Blocks the caller.
void RunParallel(size_t n, size_t parallelism, const std::function<void(size_t)>& job);

// grpc::Status as absl::Status (the codes share numbers).
absl::Status FromGrpc(const grpc::Status& status);

// Calls `call(stub, response)` once per target, in parallel, in the targets'
// order in the result. `call` makes its own ClientContext(s), deadlines set
// with `dialer.SetDeadline`, and may make several calls (pages).
template <typename Response>
std::vector<Outcome<Response>> FanOut(
    const Dialer& dialer, const std::vector<Target>& targets,
    const std::function<absl::Status(v1::GatewayControl::Stub& stub, Response* response)>& call) {
  std::vector<Outcome<Response>> outcomes(targets.size());
  RunParallel(targets.size(), /*parallelism=*/32, [&](size_t i) {
    outcomes[i].target = targets[i];
    std::unique_ptr<v1::GatewayControl::Stub> stub = dialer.Stub(targets[i]);
    outcomes[i].status = call(*stub, &outcomes[i].response);
  });
  return outcomes;
}

// As FanOut, for a unary RPC: `rpc` is e.g. &v1::GatewayControl::Stub::GetStats.
template <typename Request, typename Response>
std::vector<Outcome<Response>> FanOutUnary(const Dialer& dialer, const std::vector<Target>& targets,
                                           grpc::Status (v1::GatewayControl::Stub::*rpc)(grpc::ClientContext*,
                                                                                         const Request&, Response*),
                                           const Request& request) {
  return FanOut<Response>(dialer, targets, [&](v1::GatewayControl::Stub& stub, Response* response) {
    grpc::ClientContext context;
    dialer.SetDeadline(&context);
    return FromGrpc((stub.*rpc)(&context, request, response));
  });
}

}  // namespace gateway::ctl
