// What gatewayctl prints and how it exits: a table (table.h) or one JSON
// document with every target's result or error, one stderr line per failed
// target, and the exit code.
//
// Exit codes: 0 every target answered; 2 some targets failed (the others'
// results are printed); 1 every target failed, or a usage error.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "ctl/fanout.h"
#include "ctl/table.h"
#include "ctl/targets.h"
#include "google/protobuf/message.h"

namespace gateway::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitAllFailed = 1;
inline constexpr int kExitSomeFailed = 2;

enum class Format { kTable, kJson };

// "table" or "json"; INVALID_ARGUMENT otherwise.
absl::StatusOr<Format> ParseFormat(absl::string_view text);

// `message` as proto3 JSON on one line, lowerCamelCase names, zero values
// included (so every field a script looks for is there).
std::string MessageJson(const google::protobuf::Message& message);
// `text` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view text);

// One target's entry in the JSON document. Does not own `response`.
struct JsonResult {
  std::string target;
  absl::Status status;
  const google::protobuf::Message* response = nullptr;  // used when status is OK
};

// The document, one result a line:
//   {"targets":3,"failed":1,"results":[
//   {"target":"10.0.0.1:50051","response":{...}},
//   {"target":"10.0.0.2:50051","error":{"code":"UNAVAILABLE","message":"..."}}
//   ]}
std::string ResultsJson(const std::vector<JsonResult>& results);

// "gatewayctl: TARGET: CODE: message" (no newline).
std::string FailureLine(const std::string& target, const absl::Status& status);
// The exit code for `failed` failures among `total` targets.
int ExitCode(size_t failed, size_t total);

// Prints `outcomes` as `format` (the table from `table`) on `out`, a line
// per failure on `err`, and returns the exit code.
template <typename Response>
int Emit(Format format, const std::vector<Outcome<Response>>& outcomes,
         const std::function<Table(const std::vector<Outcome<Response>>&)>& table, std::ostream& out,
         std::ostream& err) {
  size_t failed = 0;
  for (const Outcome<Response>& o : outcomes) failed += o.status.ok() ? 0 : 1;
  if (format == Format::kJson) {
    std::vector<JsonResult> results;
    for (const Outcome<Response>& o : outcomes) results.push_back({o.target.address, o.status, &o.response});
    out << ResultsJson(results);
  } else {
    out << table(outcomes).Render();
  }
  out.flush();
  for (const Outcome<Response>& o : outcomes) {
    if (!o.status.ok()) err << FailureLine(o.target.address, o.status) << "\n";
  }
  return ExitCode(failed, outcomes.size());
}

}  // namespace gateway::ctl
