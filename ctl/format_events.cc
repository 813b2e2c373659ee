// Event lines.
#include "ctl/format_events.h"

#include "absl/strings/str_cat.h"
#include "ctl/names.h"
#include "ctl/output.h"

namespace gateway::ctl {

std::string ConnectionEventLine(const std::string& target, const v1::ConnectionEvent& event) {
  std::string line = absl::StrCat(target, " ", TimeText(FromProto(event.time())), " ", EnumWord(event.type()));
  if (event.type() == v1::ConnectionEvent::TYPE_IO_MODEL_SWITCHED) {
    const v1::IoModelSwitch& s = event.io_model_switch();
    absl::StrAppend(&line, " ", EnumWord(s.old_model()), "->", EnumWord(s.new_model()), " in ",
                    DurationText(FromProto(s.duration())));
  } else {
    const v1::Connection& c = event.connection();
    absl::StrAppend(&line, " fd=", c.fd(), " id=", c.id(), " peer=", c.peer());
    if (event.type() == v1::ConnectionEvent::TYPE_STATE_CHANGED) {
      absl::StrAppend(&line, " ", EnumWord(event.old_state()), "->", EnumWord(c.state()));
    }
    if (event.type() == v1::ConnectionEvent::TYPE_CLOSED) {
      absl::StrAppend(&line, " reason=", EnumWord(event.close_reason()), " frames_in=", c.frames_in(),
                      " frames_out=", c.frames_out());
    }
  }
  if (event.dropped() > 0) absl::StrAppend(&line, " dropped=", event.dropped());
  return line;
}

std::string BackendEventLine(const std::string& target, const v1::BackendEvent& event) {
  const v1::Backend& b = event.backend();
  std::string line = absl::StrCat(target, " ", TimeText(FromProto(event.time())), " ", EnumWord(event.type()),
                                  " address=", b.address());
  switch (event.type()) {
    case v1::BackendEvent::TYPE_STATE_CHANGED:
      absl::StrAppend(&line, " ", EnumWord(event.old_state()), "->", EnumWord(b.state()));
      break;
    case v1::BackendEvent::TYPE_WEIGHT_CHANGED: absl::StrAppend(&line, " weight=", b.weight()); break;
    case v1::BackendEvent::TYPE_ADDED:
      absl::StrAppend(&line, " state=", EnumWord(b.state()), " weight=", b.weight());
      break;
    default: break;
  }
  if (!event.reason().empty()) absl::StrAppend(&line, " reason=", JsonQuote(event.reason()));
  if (event.dropped() > 0) absl::StrAppend(&line, " dropped=", event.dropped());
  return line;
}

std::string EventJsonLine(const std::string& target, const google::protobuf::Message& event) {
  return absl::StrCat("{\"target\":", JsonQuote(target), ",\"event\":", MessageJson(event), "}");
}

}  // namespace gateway::ctl
