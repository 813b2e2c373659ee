// The short words gatewayctl uses for the API's enums ("epoll" for
// IO_MODEL_EPOLL, "read" for CONNECTION_STATE_READ) both ways, and how it
// writes durations and times.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/generated_enum_reflection.h"
#include "google/protobuf/timestamp.pb.h"

namespace gateway::ctl {

// `value`'s name without the enum's prefix, lowercased ("IO_MODEL_IO_URING"
// -> "io_uring"); the number for a value this build does not know.
std::string EnumWord(const google::protobuf::EnumDescriptor* descriptor, int value);
template <typename E>
std::string EnumWord(E value) {
  return EnumWord(google::protobuf::GetEnumDescriptor<E>(), static_cast<int>(value));
}

// The reverse of EnumWord, `flag` naming what is parsed in the error:
// INVALID_ARGUMENT listing the words for an unknown one or "unspecified".
absl::StatusOr<int> ParseEnumWord(const google::protobuf::EnumDescriptor* descriptor, absl::string_view word,
                                  absl::string_view what);
template <typename E>
absl::StatusOr<E> ParseEnumWord(absl::string_view word, absl::string_view what) {
  absl::StatusOr<int> value = ParseEnumWord(google::protobuf::GetEnumDescriptor<E>(), word, what);
  if (!value.ok()) return value.status();
  return static_cast<E>(*value);
}

absl::Duration FromProto(const google::protobuf::Duration& d);
absl::Time FromProto(const google::protobuf::Timestamp& t);
google::protobuf::Duration ToProto(absl::Duration d);

// Whole seconds and up, the way an operator reads an age: "45s", "3m7s",
// "2h5m", "3d4h"; "0s" for anything under a second or negative.
std::string AgeText(absl::Duration d);
// A short exact duration: "0s", "850us", "1.5ms", "2.25s".
std::string DurationText(absl::Duration d);
// "2026-12-02T17:13:05.123Z" (UTC, milliseconds).
std::string TimeText(absl::Time t);

}  // namespace gateway::ctl
