// One line per streamed event, prefixed by the target it came from, for
// `watch` and `watch-backends`: text, or a JSON object a line.
#pragma once

#include <string>

#include "gateway/v1/control.pb.h"

namespace gateway::ctl {

// "TARGET TIME TYPE details", e.g.
//   127.0.0.1:50051 2026-12-02T17:13:05.123Z opened fd=17 id=3 peer=127.0.0.1:40112
//   127.0.0.1:50051 2026-12-02T17:13:06.001Z closed fd=17 id=3 peer=127.0.0.1:40112 reason=peer_closed
// with " dropped=N" when events were dropped before it. No newline.
std::string ConnectionEventLine(const std::string& target, const v1::ConnectionEvent& event);
// "TARGET TIME TYPE address=... details", e.g. state changes with
// "old->new" and the reason.
std::string BackendEventLine(const std::string& target, const v1::BackendEvent& event);
// {"target":"...","event":{...}} (no newline).
std::string EventJsonLine(const std::string& target, const google::protobuf::Message& event);

}  // namespace gateway::ctl
