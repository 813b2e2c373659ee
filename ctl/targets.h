// The fleet gatewayctl talks to: control-plane addresses from --targets
// ("host:port,host:port,...") or from a DNS name that resolves to many
// addresses (--dns=name:port, e.g. a headless Service), one target each.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gateway::ctl {

// One gateway's control plane. Plain value.
struct Target {
  // "host:port" as given, or "ip:port" from DNS ("[v6]:port" for IPv6): what
  // gRPC dials and what the TARGET column shows.
  std::string address;
  bool operator==(const Target& other) const = default;
};

// Parses "host:port,host:port,..." (spaces around entries ignored; IPv6 as
// "[::1]:50051"). Duplicates are dropped, so no gateway is counted twice.
// INVALID_ARGUMENT, naming the entry, for an empty list or entry, a missing
// host, or a port outside 1..65535.
absl::StatusOr<std::vector<Target>> ParseTargets(absl::string_view list);

// Resolves "name:port" with getaddrinfo to every A and AAAA address, one
// target "ip:port" ("[v6]:port") each, in the resolver's order, duplicates
// dropped. INVALID_ARGUMENT for a bad "name:port", NOT_FOUND if the name does
// not resolve (the resolver's message included).
absl::StatusOr<std::vector<Target>> ResolveTargets(absl::string_view name_port);

}  // namespace gateway::ctl
