// Test helpers for the metrics endpoint and Prometheus's HTTP API: a
// deadline-bounded HTTP/1.0 GET over a plain socket, URL encoding, and a
// parser for the Prometheus text exposition format.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gateway::testing {

struct HttpResponse {
  int status = 0;
  std::string headers;
  std::string body;
};

// GETs http://`host`:`port``target` (target starts with '/'), reading until
// the server closes. UNAVAILABLE if it cannot connect, DEADLINE_EXCEEDED past
// `deadline`.
absl::StatusOr<HttpResponse> HttpGet(absl::string_view host, int port, absl::string_view target, absl::Time deadline);

// Percent-encodes everything but unreserved characters (RFC 3986).
std::string UrlEncode(absl::string_view text);

// One scrape, parsed. Series keys are exactly as exposed: name{l1="v1",...}.
struct Exposition {
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family name -> counter, gauge, ...
  std::map<std::string, std::string> help;   // family name -> help text

  // Returns the sample `series` or -1 if absent (every gateway value is >= 0).
  double Value(const std::string& series) const;
  // Sums the samples of metric `name` whose labels include every one of
  // `labels` (each written as l="v"); -1 if there is none.
  double Sum(absl::string_view name, const std::vector<std::string>& labels = {}) const;
  // Returns how many samples metric `name` has.
  int Count(absl::string_view name) const;
};

// Parses the text format; INVALID_ARGUMENT on a line it cannot read.
absl::StatusOr<Exposition> ParseExposition(absl::string_view text);

}  // namespace gateway::testing
