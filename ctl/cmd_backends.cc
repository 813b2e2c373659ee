// Upstream mode's backends on every gateway: list, add, remove, drain,
// undrain, weight. A change is made on each gateway independently; the
// table shows each one's picture of the backend afterwards.
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "ctl/commands.h"
#include "ctl/fanout.h"
#include "ctl/flags.h"
#include "ctl/format_backends.h"

namespace gateway::ctl {
namespace {

template <typename Request>
int ChangeBackend(const Invocation& inv,
                  grpc::Status (v1::GatewayControl::Stub::*rpc)(grpc::ClientContext*, const Request&, v1::Backend*),
                  const Request& request) {
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, rpc, request);
  return Emit<v1::Backend>(inv.format, outcomes, BackendTable, *inv.out, *inv.err);
}

}  // namespace

int RunBackends(const Invocation& inv) {
  auto outcomes =
      FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::ListBackends, v1::ListBackendsRequest());
  return Emit<v1::ListBackendsResponse>(inv.format, outcomes, BackendsTable, *inv.out, *inv.err);
}

int RunAddBackend(const Invocation& inv) {
  v1::AddBackendRequest request;
  request.set_address(inv.args[0]);
  request.set_weight(absl::GetFlag(FLAGS_weight));
  return ChangeBackend(inv, &v1::GatewayControl::Stub::AddBackend, request);
}

int RunRemoveBackend(const Invocation& inv) {
  v1::RemoveBackendRequest request;
  request.set_address(inv.args[0]);  // no timeout: the gateway waits for our deadline less a margin
  return ChangeBackend(inv, &v1::GatewayControl::Stub::RemoveBackend, request);
}

int RunDrainBackend(const Invocation& inv) {
  v1::DrainBackendRequest request;
  request.set_address(inv.args[0]);  // as RemoveBackend: bounded by --timeout
  return ChangeBackend(inv, &v1::GatewayControl::Stub::DrainBackend, request);
}

int RunUndrainBackend(const Invocation& inv) {
  v1::UndrainBackendRequest request;
  request.set_address(inv.args[0]);
  return ChangeBackend(inv, &v1::GatewayControl::Stub::UndrainBackend, request);
}

int RunSetBackendWeight(const Invocation& inv) {
  uint32_t weight = 0;
  if (!absl::SimpleAtoi(inv.args[1], &weight)) {
    return UsageError(*inv.err, "set-backend-weight ADDR W: W must be a number (1..1000)");
  }
  v1::SetBackendWeightRequest request;
  request.set_address(inv.args[0]);
  request.set_weight(weight);
  return ChangeBackend(inv, &v1::GatewayControl::Stub::SetBackendWeight, request);
}

}  // namespace gateway::ctl
