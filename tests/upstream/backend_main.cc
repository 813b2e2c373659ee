// upstream_test_backend: a default gateway (the reverse handler) as its own
// process, so the chaos tests can kill -9 and SIGSTOP a backend. Prints the
// gateway binary's ready line and runs until SIGTERM or SIGINT.
//   upstream_test_backend [--listen=127.0.0.1:0] [--reactors=1]
#include <signal.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"

int main(int argc, char** argv) {
  gateway::GatewayOptions options;
  options.listen_address = "127.0.0.1:0";
  options.reactors = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--listen=")) {
      options.listen_address = arg.substr(9);
    } else if (!absl::StartsWith(arg, "--reactors=") || !absl::SimpleAtoi(arg.substr(11), &options.reactors)) {
      std::fprintf(stderr, "upstream_test_backend: unknown flag %s\n", arg.c_str());
      return 2;
    }
  }
  // Blocked before any thread starts, so only sigwait sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto gw = gateway::Gateway::Create(options);
  if (!gw.ok()) {
    std::fprintf(stderr, "upstream_test_backend: %s\n", std::string(gw.status().message()).c_str());
    return 1;
  }
  (*gw)->Start();
  std::printf("gateway: ready {\"data_port\":%d}\n", (*gw)->port());
  std::fflush(stdout);
  int signo = 0;
  sigwait(&stop, &signo);
  (*gw)->Shutdown(absl::Seconds(2));
  return 0;
}
