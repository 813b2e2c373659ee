// abuse_probe: the control-plane abuse of bench/abuse.sh, held for --hold
// while gateway-bench measures a bystander on the data plane:
//   --watchers=N   N WatchConnections streams (each its own channel, so its own
//                  TCP connection, as N separate clients) that never read;
//   --list_loops=N N threads, each calling ListConnections in a tight loop,
//                  every page of a full snapshot per iteration.
// Prints one JSON line starting with {"abuse": (watchers open and refused,
// the refusal's message, snapshot calls and their latency) and exits 1 if a
// call fails in an unexpected way.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/v1/control.grpc.pb.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "Control-plane address");
ABSL_FLAG(absl::Duration, hold, absl::Seconds(20), "How long to keep the abuse up");
ABSL_FLAG(int, watchers, 0, "WatchConnections streams to open and never read");
ABSL_FLAG(bool, state_changes, true, "Watchers ask for state changes too (several events per request)");
ABSL_FLAG(int, list_loops, 0, "Threads calling ListConnections (every page) in a tight loop");
ABSL_FLAG(int, page_size, 10000, "ListConnections page size");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON line");

namespace {

namespace v1 = gateway::v1;

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true, std::memory_order_relaxed); }

std::string JsonSafe(std::string s) { return absl::StrReplaceAll(s, {{"\"", "'"}, {"\\", "/"}, {"\n", " "}}); }

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // its own TCP connection
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// "min/p50/p99/max" of `ms` as a JSON object.
std::string Summary(std::vector<double> ms) {
  if (ms.empty()) return "null";
  std::sort(ms.begin(), ms.end());
  auto at = [&ms](double q) { return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return absl::StrFormat("{\"min\":%.3f,\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}", ms.front(), at(0.5), at(0.99),
                         ms.back());
}

// The stalled watchers: started on one completion queue, never read. Each
// goes start -> initial metadata -> Finish, which completes only when the
// server refuses the stream or when we cancel it at the end.
class Watchers {
 public:
  Watchers(const std::string& target, int n, bool state_changes) : calls_(n) {
    v1::WatchConnectionsRequest request;
    request.set_include_state_changes(state_changes);
    for (int i = 0; i < n; ++i) {
      Call& c = calls_[i];
      c.channel = OwnChannel(target);
      c.stub = v1::GatewayControl::NewStub(c.channel);
      c.context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(1));
      c.reader = c.stub->PrepareAsyncWatchConnections(&c.context, request, &cq_);
      c.reader->StartCall(Tag(i, kStarted));
    }
    thread_ = std::thread([this] { Run(); });
  }

  // Cancels what is still open, waits for every call to end, and reports.
  void End(std::string* json, std::string* error) {
    ending_ = true;
    for (Call& c : calls_) c.context.TryCancel();
    thread_.join();
    // Open to the end: answered, then cancelled by us. Refused: RESOURCE_EXHAUSTED
    // before that. Pending: not answered at all by then.
    int refused = 0, open = 0, pending = 0;
    std::string refusal;
    for (const Call& c : calls_) {
      const bool cancelled = c.status.error_code() == grpc::StatusCode::CANCELLED && !c.ended_early;
      if (c.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && c.ended_early) {
        ++refused;
        refusal = c.status.error_message();
      } else if (cancelled && c.answered) {
        ++open;
      } else if (cancelled) {
        ++pending;
      } else {
        if (error->empty()) {
          *error = absl::StrCat("watcher ended with ", static_cast<int>(c.status.error_code()), ": ",
                                c.status.error_message());
        }
      }
    }
    *json = absl::StrFormat(
        "\"watchers\":%d,\"watchers_open\":%d,\"watchers_refused\":%d,\"watchers_pending\":%d,\"refusal\":\"%s\"",
        static_cast<int>(calls_.size()), open, refused, pending, JsonSafe(refusal));
  }

 private:
  enum Step { kStarted, kMetadata, kFinished };
  struct Call {
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<v1::GatewayControl::Stub> stub;
    grpc::ClientContext context;
    std::unique_ptr<grpc::ClientAsyncReader<v1::ConnectionEvent>> reader;
    grpc::Status status;
    bool answered = false;     // initial metadata (or a refusal) arrived
    bool ended_early = false;  // before End()
  };
  static void* Tag(int i, Step step) { return reinterpret_cast<void*>(static_cast<intptr_t>(i * 4 + step)); }

  void Run() {
    int ended = 0;
    void* tag = nullptr;
    bool ok = false;
    while (ended < static_cast<int>(calls_.size()) && cq_.Next(&tag, &ok)) {
      const intptr_t t = reinterpret_cast<intptr_t>(tag);
      Call& c = calls_[t / 4];
      switch (static_cast<Step>(t % 4)) {
        case kStarted: c.reader->ReadInitialMetadata(Tag(t / 4, kMetadata)); break;
        // Finish only after the metadata: both would otherwise ask for it.
        case kMetadata:
          c.answered = ok;
          c.reader->Finish(&c.status, Tag(t / 4, kFinished));
          break;
        case kFinished:
          c.ended_early = !ending_.load();
          ++ended;
          break;
      }
    }
    cq_.Shutdown();
    while (cq_.Next(&tag, &ok)) {
    }
  }

  std::atomic<bool> ending_{false};
  std::vector<Call> calls_;
  grpc::CompletionQueue cq_;
  std::thread thread_;
};

struct ListResult {
  std::vector<double> ms;
  int64_t last_count = -1;
  std::string error;
};

// One tight loop of full snapshots until `until` (or a signal).
void ListLoop(const std::string& target, int page_size, absl::Time until, ListResult* out) {
  auto channel = OwnChannel(target);
  auto stub = v1::GatewayControl::NewStub(channel);
  while (absl::Now() < until && !g_stop.load()) {
    const auto start = std::chrono::steady_clock::now();
    int64_t count = 0;
    std::string token;
    do {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      v1::ListConnectionsRequest request;
      request.set_page_size(page_size);
      request.set_page_token(token);
      v1::ListConnectionsResponse response;
      const grpc::Status status = stub->ListConnections(&context, request, &response);
      if (!status.ok()) {
        out->error = absl::StrCat("ListConnections: ", status.error_message());
        return;
      }
      count += response.connections_size();
      token = response.next_page_token();
    } while (!token.empty());
    out->ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    out->last_count = count;
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("Stalled watchers and snapshot loops against a gateway's control plane.");
  absl::ParseCommandLine(argc, argv);
  signal(SIGINT, OnStopSignal);
  signal(SIGTERM, OnStopSignal);
  const std::string target = absl::GetFlag(FLAGS_target);
  {
    auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      std::fprintf(stderr, "abuse_probe: cannot reach %s\n", target.c_str());
      return 1;
    }
  }
  const absl::Time start = absl::Now();
  const absl::Time until = start + absl::GetFlag(FLAGS_hold);

  std::unique_ptr<Watchers> watchers;
  if (absl::GetFlag(FLAGS_watchers) > 0) {
    watchers = std::make_unique<Watchers>(target, absl::GetFlag(FLAGS_watchers), absl::GetFlag(FLAGS_state_changes));
  }
  const int loops = std::max(0, absl::GetFlag(FLAGS_list_loops));
  std::vector<ListResult> lists(loops);
  std::vector<std::thread> threads;
  for (int i = 0; i < loops; ++i) {
    threads.emplace_back(ListLoop, target, absl::GetFlag(FLAGS_page_size), until, &lists[i]);
  }
  while (absl::Now() < until && !g_stop.load()) absl::SleepFor(absl::Milliseconds(50));
  for (std::thread& t : threads) t.join();

  std::string error;
  std::string watch_json = "\"watchers\":0";
  if (watchers) watchers->End(&watch_json, &error);
  std::vector<double> all_ms;
  int64_t listed = -1;
  for (const ListResult& r : lists) {
    all_ms.insert(all_ms.end(), r.ms.begin(), r.ms.end());
    listed = std::max(listed, r.last_count);
    if (error.empty() && !r.error.empty()) error = r.error;
  }
  const double held = absl::ToDoubleSeconds(absl::Now() - start);
  std::string label = absl::GetFlag(FLAGS_label);
  std::printf(
      "{\"abuse\":\"abuse_probe\",\"label\":\"%s\",\"held_s\":%.1f,%s,\"list_loops\":%d,\"list_calls\":%d,"
      "\"list_calls_per_s\":%.1f,\"listed\":%lld,\"list_ms\":%s,\"error\":\"%s\",\"ok\":%s}\n",
      JsonSafe(label).c_str(), held, watch_json.c_str(), loops, static_cast<int>(all_ms.size()),
      held > 0 ? all_ms.size() / held : 0.0, static_cast<long long>(listed), Summary(all_ms).c_str(),
      JsonSafe(error).c_str(), error.empty() ? "true" : "false");
  return error.empty() ? 0 : 1;
}
