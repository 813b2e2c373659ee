// Enum words, durations and times.
#include "ctl/names.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace gateway::ctl {
namespace {

// The enum's common prefix, read off its zero value ("IO_MODEL_UNSPECIFIED").
std::string Prefix(const google::protobuf::EnumDescriptor* descriptor) {
  const google::protobuf::EnumValueDescriptor* zero = descriptor->FindValueByNumber(0);
  if (zero == nullptr || !absl::EndsWith(zero->name(), "UNSPECIFIED")) return "";
  return zero->name().substr(0, zero->name().size() - std::string("UNSPECIFIED").size());
}

}  // namespace

std::string EnumWord(const google::protobuf::EnumDescriptor* descriptor, int value) {
  const google::protobuf::EnumValueDescriptor* found = descriptor->FindValueByNumber(value);
  if (found == nullptr) return absl::StrCat(value);
  const std::string prefix = Prefix(descriptor);
  absl::string_view name = found->name();
  absl::ConsumePrefix(&name, prefix);
  return absl::AsciiStrToLower(name);
}

absl::StatusOr<int> ParseEnumWord(const google::protobuf::EnumDescriptor* descriptor, absl::string_view word,
                                  absl::string_view what) {
  const google::protobuf::EnumValueDescriptor* found =
      descriptor->FindValueByName(absl::StrCat(Prefix(descriptor), absl::AsciiStrToUpper(word)));
  if (found != nullptr && found->number() != 0) return found->number();
  std::vector<std::string> words;
  for (int i = 0; i < descriptor->value_count(); ++i) {
    if (descriptor->value(i)->number() != 0) words.push_back(EnumWord(descriptor, descriptor->value(i)->number()));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, " must be one of ", absl::StrJoin(words, "|"), ", not '", word, "'"));
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time FromProto(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

google::protobuf::Duration ToProto(absl::Duration d) {
  google::protobuf::Duration out;
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out.set_seconds(seconds);
  out.set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
  return out;
}

std::string AgeText(absl::Duration d) {
  const int64_t s = d < absl::ZeroDuration() ? 0 : absl::ToInt64Seconds(d);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrCat(s / 60, "m", s % 60, "s");
  if (s < 86400) return absl::StrCat(s / 3600, "h", s % 3600 / 60, "m");
  return absl::StrCat(s / 86400, "d", s % 86400 / 3600, "h");
}

std::string DurationText(absl::Duration d) {
  // Three significant digits are plenty for a switch or a latency.
  if (d == absl::ZeroDuration()) return "0s";
  if (d >= absl::Seconds(1))
    d = absl::Trunc(d, absl::Milliseconds(10));
  else if (d >= absl::Milliseconds(1))
    d = absl::Trunc(d, absl::Microseconds(10));
  else
    d = absl::Trunc(d, absl::Microseconds(1));
  return absl::FormatDuration(d);
}

std::string TimeText(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()); }

}  // namespace gateway::ctl
