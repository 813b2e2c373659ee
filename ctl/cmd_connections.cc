// list (every page from every gateway), get and close (one gateway: an fd
// only means something there) and drain (every gateway).
#include "absl/flags/flag.h"
#include "absl/time/clock.h"
#include "ctl/commands.h"
#include "ctl/fanout.h"
#include "ctl/flags.h"
#include "ctl/format_connections.h"
#include "ctl/names.h"

namespace gateway::ctl {
namespace {

// Connections per page: the server's default, small enough that no page
// holds a reactor up for long.
constexpr int kPageSize = 1000;
// A listing stops after this many pages (ten million connections), so a
// gateway that kept handing out tokens could not keep us forever.
constexpr int kMaxPages = 10000;

// Every page of the listing into `out`; its total_size is then the number listed.
absl::Status ListAll(const Dialer& dialer, v1::GatewayControl::Stub& stub, v1::ConnectionState state,
                     v1::ListConnectionsResponse* out) {
  v1::ListConnectionsRequest request;
  request.set_page_size(kPageSize);
  request.set_state(state);
  for (int page = 0; page < kMaxPages; ++page) {
    grpc::ClientContext context;
    dialer.SetDeadline(&context);
    v1::ListConnectionsResponse response;
    if (absl::Status status = FromGrpc(stub.ListConnections(&context, request, &response)); !status.ok()) {
      return status;
    }
    for (v1::Connection& c : *response.mutable_connections()) *out->add_connections() = std::move(c);
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  out->set_total_size(out->connections_size());
  return absl::OkStatus();
}

}  // namespace

int RunList(const Invocation& inv) {
  v1::ConnectionState state = v1::CONNECTION_STATE_UNSPECIFIED;
  if (const std::string word = absl::GetFlag(FLAGS_state); !word.empty()) {
    absl::StatusOr<v1::ConnectionState> parsed = ParseEnumWord<v1::ConnectionState>(word, "--state");
    if (!parsed.ok()) return UsageError(*inv.err, parsed.status().message());
    state = *parsed;
  }
  const Dialer& dialer = *inv.dialer;
  auto outcomes = FanOut<v1::ListConnectionsResponse>(
      dialer, inv.targets, [&](v1::GatewayControl::Stub& stub, v1::ListConnectionsResponse* out) {
        return ListAll(dialer, stub, state, out);
      });
  const absl::Time now = absl::Now();
  return Emit<v1::ListConnectionsResponse>(
      inv.format, outcomes, [now](const auto& o) { return ConnectionsTable(o, now); }, *inv.out, *inv.err);
}

int RunGet(const Invocation& inv) {
  if (absl::GetFlag(FLAGS_fd) < 0) return UsageError(*inv.err, "get needs --fd=N (as listed)");
  v1::GetConnectionRequest request;
  request.set_fd(absl::GetFlag(FLAGS_fd));
  request.set_id(absl::GetFlag(FLAGS_id));
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::GetConnection, request);
  const absl::Time now = absl::Now();
  return Emit<v1::Connection>(
      inv.format, outcomes, [now](const auto& o) { return ConnectionTable(o, now); }, *inv.out, *inv.err);
}

int RunClose(const Invocation& inv) {
  const int fd = absl::GetFlag(FLAGS_fd);
  if (fd < 0) return UsageError(*inv.err, "close needs --fd=N (as listed)");
  v1::CloseConnectionRequest request;
  request.set_fd(fd);
  request.set_id(absl::GetFlag(FLAGS_id));
  request.set_force(absl::GetFlag(FLAGS_force));
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::CloseConnection, request);
  return Emit<v1::CloseConnectionResponse>(
      inv.format, outcomes, [fd](const auto& o) { return CloseTable(o, fd); }, *inv.out, *inv.err);
}

int RunDrain(const Invocation& inv) {
  const std::optional<double> fraction = absl::GetFlag(FLAGS_fraction);
  const std::optional<int64_t> count = absl::GetFlag(FLAGS_count);
  if (fraction.has_value() == count.has_value()) return UsageError(*inv.err, "drain needs --fraction or --count");
  v1::DrainConnectionsRequest request;
  if (fraction.has_value()) {
    if (!(*fraction > 0 && *fraction <= 1)) return UsageError(*inv.err, "--fraction must be in (0, 1]");
    request.set_fraction(*fraction);
  } else {
    if (*count < 0 || *count > UINT32_MAX) return UsageError(*inv.err, "--count must be 0..4294967295");
    request.set_count(static_cast<uint32_t>(*count));
  }
  const std::optional<absl::Duration> min_age = absl::GetFlag(FLAGS_min_age);
  const std::optional<absl::Duration> spread = absl::GetFlag(FLAGS_spread);
  if (min_age.value_or(absl::ZeroDuration()) < absl::ZeroDuration() ||
      spread.value_or(absl::ZeroDuration()) < absl::ZeroDuration()) {
    return UsageError(*inv.err, "--min_age and --spread must be >= 0");
  }
  if (min_age.has_value()) *request.mutable_min_age() = ToProto(*min_age);
  if (spread.has_value()) *request.mutable_spread() = ToProto(*spread);
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::DrainConnections, request);
  return Emit<v1::DrainConnectionsResponse>(inv.format, outcomes, DrainTable, *inv.out, *inv.err);
}

}  // namespace gateway::ctl
