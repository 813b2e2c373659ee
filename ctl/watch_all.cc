// Streams from every target, merged line by line.
#include "ctl/watch_all.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "ctl/fanout.h"
#include "ctl/stop_signal.h"

namespace gateway::ctl {

int WatchAll(const Invocation& inv, absl::Duration duration, const StreamReader& read) {
  StopSignal stop;
  std::mutex out_mu;  // one line at a time on stdout and stderr
  std::atomic<bool> stopping{false};
  std::atomic<size_t> running{inv.targets.size()};
  std::atomic<size_t> failed{0};
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  for (size_t i = 0; i < inv.targets.size(); ++i) contexts.push_back(std::make_unique<grpc::ClientContext>());

  auto print = [&](std::ostream& stream, const std::string& line) {
    std::lock_guard<std::mutex> lock(out_mu);
    stream << line << "\n";
    stream.flush();
  };
  std::vector<std::thread> threads;
  for (size_t i = 0; i < inv.targets.size(); ++i) {
    threads.emplace_back([&, i] {
      const std::string& target = inv.targets[i].address;
      std::unique_ptr<v1::GatewayControl::Stub> stub = inv.dialer->Stub(inv.targets[i]);
      const grpc::Status status =
          read(*stub, contexts[i].get(), target, [&](const std::string& line) { print(*inv.out, line); });
      if (!stopping.load()) {
        if (status.ok()) {
          print(*inv.err, absl::StrCat("gatewayctl: ", target, ": stream ended by the gateway"));
        } else {
          failed.fetch_add(1);
          const absl::Status error = FromGrpc(status);
          if (inv.format == Format::kJson) {
            print(*inv.out, absl::StrCat("{\"target\":", JsonQuote(target),
                                         ",\"error\":{\"code\":", JsonQuote(absl::StatusCodeToString(error.code())),
                                         ",\"message\":", JsonQuote(error.message()), "}}"));
          }
          print(*inv.err, FailureLine(target, error));
        }
      }
      if (running.fetch_sub(1) == 1) stop.Notify();
    });
  }
  stop.Wait(duration);
  stopping.store(true);
  for (const std::unique_ptr<grpc::ClientContext>& context : contexts) context->TryCancel();
  for (std::thread& thread : threads) thread.join();
  return ExitCode(failed.load(), inv.targets.size());
}

}  // namespace gateway::ctl
