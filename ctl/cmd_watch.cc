// watch and watch-backends: WatchConnections and WatchBackends from every
// gateway, merged.
#include "absl/flags/flag.h"
#include "ctl/commands.h"
#include "ctl/flags.h"
#include "ctl/format_events.h"
#include "ctl/watch_all.h"

namespace gateway::ctl {

int RunWatch(const Invocation& inv) {
  v1::WatchConnectionsRequest request;
  request.set_include_state_changes(absl::GetFlag(FLAGS_state_changes));
  return WatchAll(
      inv, absl::GetFlag(FLAGS_duration),
      ReadEvents<v1::ConnectionEvent>(
          inv.format,
          [request](v1::GatewayControl::Stub& stub, grpc::ClientContext* context) {
            return stub.WatchConnections(context, request);
          },
          ConnectionEventLine,
          [](const std::string& target, const v1::ConnectionEvent& e) { return EventJsonLine(target, e); }));
}

int RunWatchBackends(const Invocation& inv) {
  return WatchAll(inv, absl::GetFlag(FLAGS_duration),
                  ReadEvents<v1::BackendEvent>(
                      inv.format,
                      [](v1::GatewayControl::Stub& stub, grpc::ClientContext* context) {
                        return stub.WatchBackends(context, v1::WatchBackendsRequest());
                      },
                      BackendEventLine,
                      [](const std::string& target, const v1::BackendEvent& e) { return EventJsonLine(target, e); }));
}

}  // namespace gateway::ctl
