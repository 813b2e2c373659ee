// The streaming fan-out behind `watch` and `watch-backends`: one stream per
// target, each on its own thread, every event printed as a line as it
// arrives (prefixed by its target), until Ctrl-C, --duration, or every
// stream has ended. A stream that fails is reported on stderr (and, with
// JSON, as an error line) and the others go on.
#pragma once

#include <functional>
#include <string>

#include "absl/time/time.h"
#include "ctl/commands.h"
#include "grpcpp/grpcpp.h"

namespace gateway::ctl {

// Reads one target's stream to its end: opens it on `stub` with `context`,
// calls `emit(line)` for each event (from the stream's thread), and returns
// the stream's final status.
using StreamReader =
    std::function<grpc::Status(v1::GatewayControl::Stub& stub, grpc::ClientContext* context, const std::string& target,
                               const std::function<void(const std::string&)>& emit)>;

// Runs `read` for every target at once and returns the exit code (output.h):
// a stream the gateway ends with OK is reported ("stream ended") but is not
// a failure; one we cancel at the end is neither.
int WatchAll(const Invocation& inv, absl::Duration duration, const StreamReader& read);

// A StreamReader for one server-streaming RPC: `open` starts it, `line`
// formats an event for the table output (JSON output ignores it).
template <typename Event>
StreamReader ReadEvents(
    Format format,
    std::function<std::unique_ptr<grpc::ClientReader<Event>>(v1::GatewayControl::Stub&, grpc::ClientContext*)> open,
    std::function<std::string(const std::string&, const Event&)> line,
    std::function<std::string(const std::string&, const Event&)> json_line) {
  return [=](v1::GatewayControl::Stub& stub, grpc::ClientContext* context, const std::string& target,
             const std::function<void(const std::string&)>& emit) {
    std::unique_ptr<grpc::ClientReader<Event>> reader = open(stub, context);
    Event event;
    while (reader->Read(&event)) emit(format == Format::kJson ? json_line(target, event) : line(target, event));
    return reader->Finish();
  };
}

}  // namespace gateway::ctl
