// GatewayProcess: the soak driver's own gateway, for runs that start one
// (bench/soak.sh, the CI test): the real binary on loopback with every port
// chosen by the kernel (port 0), the ports read back from the "gateway: ready
// {...}" line it prints on stderr, its output copied to a log file.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace soak {

// Driver-thread only (a reader thread of its own copies the output). Start it
// before any other thread exists: it forks. The destructor stops the child
// (SIGTERM, then SIGKILL) and reaps it; the child also dies with the driver
// (PR_SET_PDEATHSIG).
class GatewayProcess {
 public:
  // Runs `binary --listen=127.0.0.1:0 --control_listen=127.0.0.1:0
  // --metrics_listen=127.0.0.1:0 <args...>` and waits (up to `timeout_ms`)
  // until it has printed its data, control and metrics ports.
  static absl::StatusOr<std::unique_ptr<GatewayProcess>> Start(const std::string& binary,
                                                               const std::vector<std::string>& args,
                                                               const std::string& log_path, int timeout_ms);
  ~GatewayProcess();
  GatewayProcess(const GatewayProcess&) = delete;
  GatewayProcess& operator=(const GatewayProcess&) = delete;

  pid_t pid() const { return pid_; }
  int data_port() const { return data_port_; }
  int control_port() const { return control_port_; }
  int metrics_port() const { return metrics_port_; }
  // True while the child runs (reaps it once it has exited).
  bool Running();
  // SIGTERM, up to `grace_ms` for it to exit, then SIGKILL. Returns the exit
  // status, or 128 + the signal that ended it.
  int Stop(int grace_ms);

 private:
  GatewayProcess(pid_t pid, int out_fd, const std::string& log_path);
  void CopyOutput(int out_fd, const std::string& log_path);
  bool WaitForPorts(int timeout_ms);
  int Reap(bool block);  // the exit status, or -1 if still running

  pid_t pid_;
  int exit_status_ = -1;
  int data_port_ = 0;
  int control_port_ = 0;
  int metrics_port_ = 0;
  std::mutex mu_;
  std::condition_variable ports_seen_;
  int parsed_[3] = {0, 0, 0};   // guarded by mu_: data, control, metrics
  bool output_closed_ = false;  // guarded by mu_
  std::thread reader_;
};

// What `binary --helpfull` prints (stdout and stderr); empty on failure.
std::string GatewayHelp(const std::string& binary);

}  // namespace soak
