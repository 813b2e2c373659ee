// JSON output and exit codes.
#include "ctl/output.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"

namespace gateway::ctl {

absl::StatusOr<Format> ParseFormat(absl::string_view text) {
  if (text == "table") return Format::kTable;
  if (text == "json") return Format::kJson;
  return absl::InvalidArgumentError(absl::StrCat("--output must be table or json, not '", text, "'"));
}

std::string MessageJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string json;
  // Printing a valid message cannot fail; an empty object keeps the document valid if it did.
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) return "{}";
  return json;
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      absl::StrAppendFormat(&out, "\\u%04x", c);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string ResultsJson(const std::vector<JsonResult>& results) {
  size_t failed = 0;
  for (const JsonResult& r : results) failed += r.status.ok() ? 0 : 1;
  std::string out = absl::StrCat("{\"targets\":", results.size(), ",\"failed\":", failed, ",\"results\":[\n");
  for (size_t i = 0; i < results.size(); ++i) {
    const JsonResult& r = results[i];
    absl::StrAppend(&out, "{\"target\":", JsonQuote(r.target), ",");
    if (r.status.ok()) {
      absl::StrAppend(&out, "\"response\":", r.response != nullptr ? MessageJson(*r.response) : "{}", "}");
    } else {
      absl::StrAppend(&out, "\"error\":{\"code\":", JsonQuote(absl::StatusCodeToString(r.status.code())),
                      ",\"message\":", JsonQuote(r.status.message()), "}}");
    }
    absl::StrAppend(&out, i + 1 < results.size() ? ",\n" : "\n");
  }
  return out + "]}\n";
}

std::string FailureLine(const std::string& target, const absl::Status& status) {
  return absl::StrCat("gatewayctl: ", target, ": ", StatusText(status));
}

int ExitCode(size_t failed, size_t total) {
  if (failed == 0) return kExitOk;
  return failed == total ? kExitAllFailed : kExitSomeFailed;
}

}  // namespace gateway::ctl
