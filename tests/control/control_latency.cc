// control_latency: measures control-plane latency against a running gateway
// with many open connections. Opens --connections client connections to the
// data port (one round trip each, so they are established), then times
// ListConnections (one page of up to 10000, and a full walk with
// --page_size), GetStats and SetTriggerMode flips, and prints min/median/max.
//   gateway --reactors=2 --metrics_listen= &    # in another process: fds are per process
//   control_latency --data_port=6789 --control=127.0.0.1:50051 --connections=10000
// Beyond one process's fd limit, hold more connections from other processes:
//   control_latency --data_port=6789 --connections=9900 --iterations=0 --hold_seconds=60 &
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/test_client.h"

ABSL_FLAG(int, data_port, 6789, "gateway data port on 127.0.0.1");
ABSL_FLAG(std::string, control, "127.0.0.1:50051", "control-plane address");
ABSL_FLAG(int, connections, 10000, "client connections to open");
ABSL_FLAG(int, iterations, 20, "timed calls per measurement");
ABSL_FLAG(int, page_size, 1000, "page size for the paged walk");
ABSL_FLAG(int, hold_seconds, 0,
          "keep the connections open this long after measuring (with --iterations=0: only hold them, so several "
          "processes can load one gateway beyond one process's fd limit)");

namespace {

namespace pb = ::gateway::v1;

void Report(const char* what, std::vector<absl::Duration> samples) {
  std::sort(samples.begin(), samples.end());
  std::printf("%-44s min %9.3f ms  median %9.3f ms  max %9.3f ms  (n=%zu)\n", what,
              absl::ToDoubleMilliseconds(samples.front()), absl::ToDoubleMilliseconds(samples[samples.size() / 2]),
              absl::ToDoubleMilliseconds(samples.back()), samples.size());
}

template <typename F>
std::vector<absl::Duration> Time(int n, F f) {
  std::vector<absl::Duration> out;
  for (int i = 0; i < n; ++i) {
    const absl::Time start = absl::Now();
    if (!f()) {
      std::fprintf(stderr, "call failed\n");
      std::exit(1);
    }
    out.push_back(absl::Now() - start);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  gateway::testing::RaiseFdLimit();
  const int n = absl::GetFlag(FLAGS_connections);
  std::vector<gateway::testing::TestClient> clients;
  clients.reserve(n);
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<gateway::testing::TestClient> c = gateway::testing::TestClient::Connect(absl::GetFlag(FLAGS_data_port));
    if (!c.ok() || !c->RoundTrip("x").ok()) {
      std::fprintf(stderr, "connection %d failed: %s\n", i, c.status().ToString().c_str());
      return 1;
    }
    clients.push_back(*std::move(c));
  }
  const int iterations = absl::GetFlag(FLAGS_iterations);
  if (iterations <= 0) {
    std::printf("holding %d connections\n", n);
    std::fflush(stdout);
    absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_hold_seconds)));
    return 0;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  auto stub = pb::GatewayControl::NewStub(
      grpc::CreateCustomChannel(absl::GetFlag(FLAGS_control), grpc::InsecureChannelCredentials(), args));

  pb::ListConnectionsResponse page;
  auto list = [&](int page_size, const std::string& token) {
    grpc::ClientContext context;
    pb::ListConnectionsRequest request;
    request.set_page_size(page_size);
    request.set_page_token(token);
    return stub->ListConnections(&context, request, &page).ok();
  };
  list(10000, "");
  std::printf("gateway reports %lld connections; one 10000-entry page is %zu bytes\n",
              static_cast<long long>(page.total_size()), page.ByteSizeLong());
  Report("ListConnections, one page of 10000", Time(iterations, [&] { return list(10000, ""); }));
  const int page_size = absl::GetFlag(FLAGS_page_size);
  Report(absl::StrCat("ListConnections, one page of ", page_size).c_str(),
         Time(iterations, [&] { return list(page_size, ""); }));
  Report(absl::StrCat("ListConnections, walk all pages of ", page_size).c_str(), Time(iterations, [&] {
           std::string token;
           do {
             if (!list(page_size, token)) return false;
             token = page.next_page_token();
           } while (!token.empty());
           return true;
         }));
  Report("GetStats", Time(iterations, [&] {
           grpc::ClientContext context;
           pb::Stats stats;
           return stub->GetStats(&context, pb::GetStatsRequest(), &stats).ok();
         }));
  int k = 0;
  Report("SetTriggerMode (alternating LEVEL/EDGE)", Time(iterations, [&] {
           grpc::ClientContext context;
           pb::SetTriggerModeRequest request;
           request.set_mode(k++ % 2 == 0 ? pb::TRIGGER_MODE_LEVEL : pb::TRIGGER_MODE_EDGE);
           pb::TriggerModeStatus status;
           return stub->SetTriggerMode(&context, request, &status).ok();
         }));
  absl::SleepFor(absl::Seconds(absl::GetFlag(FLAGS_hold_seconds)));
  return 0;
}
