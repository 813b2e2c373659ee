// control_probe: times the gateway's control-plane operations that scale with
// the number of connections, for bench/run.sh and by hand: a full
// ListConnections snapshot (every page), its first page alone, GetStats, and
// SetTriggerMode switches (level, then back to edge), each repeated --repeat
// times over one gRPC channel. Prints one JSON line starting with {"control":
// (min/median/max in ms) and exits 1 if a call fails or the snapshot does not
// hold --expect connections. The connections come from elsewhere, e.g.
//   gateway --reactors=2 &
//   gateway-bench --port=6789 --idle=10000 --duration=600s &   # holds them open
//   control_probe --target=127.0.0.1:50051 --expect=10000 --page_size=1000
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "gateway/v1/control.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Control-plane address");
ABSL_FLAG(int, repeat, 5, "Times each operation is timed");
ABSL_FLAG(int, page_size, 10000, "ListConnections page size");
ABSL_FLAG(int64_t, expect, -1, "Connections the snapshot must hold; -1 = do not check");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON line");

namespace {

namespace v1 = gateway::v1;

double MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// "min/median/max" of `ms` as a JSON object.
std::string Summary(std::vector<double> ms) {
  if (ms.empty()) return "null";
  std::sort(ms.begin(), ms.end());
  return absl::StrFormat("{\"min\":%.3f,\"median\":%.3f,\"max\":%.3f}", ms.front(), ms[ms.size() / 2], ms.back());
}

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  return context;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Times ListConnections and SetTriggerMode on a gateway's control plane.");
  absl::ParseCommandLine(argc, argv);
  const int repeat = std::max(1, absl::GetFlag(FLAGS_repeat));
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials());
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::fprintf(stderr, "control_probe: cannot reach %s\n", absl::GetFlag(FLAGS_target).c_str());
    return 1;
  }
  auto stub = v1::GatewayControl::NewStub(channel);
  std::string error;
  int64_t listed = -1;
  std::vector<double> list_ms, page_ms, stats_ms, switch_ms;
  for (int i = 0; i < repeat && error.empty(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    int64_t count = 0;
    std::string token;
    do {
      v1::ListConnectionsRequest request;
      request.set_page_size(absl::GetFlag(FLAGS_page_size));
      request.set_page_token(token);
      v1::ListConnectionsResponse response;
      const grpc::Status status = stub->ListConnections(Context().get(), request, &response);
      if (!status.ok()) {
        error = absl::StrCat("ListConnections: ", status.error_message());
        break;
      }
      count += response.connections_size();
      token = response.next_page_token();
    } while (!token.empty());
    list_ms.push_back(MillisSince(start));
    listed = count;
  }
  for (int i = 0; i < repeat && error.empty(); ++i) {
    v1::ListConnectionsRequest request;
    request.set_page_size(absl::GetFlag(FLAGS_page_size));
    v1::ListConnectionsResponse page;
    auto start = std::chrono::steady_clock::now();
    grpc::Status status = stub->ListConnections(Context().get(), request, &page);
    page_ms.push_back(MillisSince(start));
    if (!status.ok()) error = absl::StrCat("ListConnections: ", status.error_message());
    v1::Stats stats;
    start = std::chrono::steady_clock::now();
    status = stub->GetStats(Context().get(), v1::GetStatsRequest(), &stats);
    stats_ms.push_back(MillisSince(start));
    if (!status.ok()) error = absl::StrCat("GetStats: ", status.error_message());
  }
  for (int i = 0; i < repeat && error.empty(); ++i) {
    for (v1::TriggerMode mode : {v1::TRIGGER_MODE_LEVEL, v1::TRIGGER_MODE_EDGE}) {
      v1::SetTriggerModeRequest request;
      request.set_mode(mode);
      v1::TriggerModeStatus response;
      const auto start = std::chrono::steady_clock::now();
      const grpc::Status status = stub->SetTriggerMode(Context().get(), request, &response);
      switch_ms.push_back(MillisSince(start));
      if (!status.ok()) error = absl::StrCat("SetTriggerMode: ", status.error_message());
      if (status.ok() && response.mode() != mode) error = "SetTriggerMode: mode not applied";
    }
  }
  const int64_t expect = absl::GetFlag(FLAGS_expect);
  if (error.empty() && expect >= 0 && listed != expect) {
    error = absl::StrCat("snapshot holds ", listed, " connections, expected ", expect);
  }
  std::string label = absl::GetFlag(FLAGS_label);
  label.erase(std::remove_if(label.begin(), label.end(), [](char c) { return c == '"' || c == '\\'; }), label.end());
  std::printf(
      "{\"control\":\"control_probe\",\"label\":\"%s\",\"connections\":%lld,\"repeat\":%d,\"list_ms\":%s,"
      "\"page_ms\":%s,\"stats_ms\":%s,\"switch_ms\":%s,\"error\":\"%s\",\"ok\":%s}\n",
      label.c_str(), static_cast<long long>(listed), repeat, Summary(list_ms).c_str(), Summary(page_ms).c_str(),
      Summary(stats_ms).c_str(), Summary(switch_ms).c_str(),
      absl::StrReplaceAll(error, {{"\"", "'"}, {"\\", "/"}}).c_str(), error.empty() ? "true" : "false");
  return error.empty() ? 0 : 1;
}
