// The soak's control-plane loads: TriggerFlipper (SetTriggerMode level <->
// edge every interval), CloseStorm (the driver's own connections, found with
// ListConnections by their local address and closed with CloseConnection
// {fd, id}: graceful, forced, or with a wrong id that must miss), and
// StalledWatchers (WatchConnections streams with state changes that are never
// read, or read one event every few seconds, each on its own HTTP/2
// connection).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench/soak/scenario.h"
#include "gateway/v1/control.grpc.pb.h"

namespace soak {

namespace v1 = ::gateway::v1;
using ControlStub = v1::GatewayControl::Stub;

// See Scenario for threading. The stub is shared (gRPC stubs are thread-safe).
class TriggerFlipper : public Scenario {
 public:
  TriggerFlipper(const SoakTarget& target, std::shared_ptr<ControlStub> stub, int interval_ms)
      : Scenario(target, 5), stub_(std::move(stub)), interval_ms_(interval_ms) {}
  ~TriggerFlipper() override { Join(); }

 protected:
  void Run() override;

 private:
  std::shared_ptr<ControlStub> stub_;
  const int interval_ms_;
  int logged_ = 0;
};

struct StormOptions {
  int conns = 8;          // per batch
  int interval_ms = 500;  // between batches
  int max_pipeline = 8;
};

// See Scenario for threading.
class CloseStorm : public Scenario {
 public:
  CloseStorm(const SoakTarget& target, std::shared_ptr<ControlStub> stub, const StormOptions& options)
      : Scenario(target, 6), stub_(std::move(stub)), options_(options) {}
  ~CloseStorm() override { Join(); }

 protected:
  void Run() override;

 private:
  struct Member;
  void RunBatch();
  // Drives every live member once (a poll of at most `timeout_ms`), topping
  // up the ones still meant to send; calls Settle() on those that end.
  void PumpAll(std::vector<Member>& members, int timeout_ms);
  void TopUp(Member& m);
  void Settle(Member& m, FrameStream::Result end);

  std::shared_ptr<ControlStub> stub_;
  const StormOptions options_;
  int logged_ = 0;
};

struct WatcherOptions {
  std::string control_target;  // host:port of the control plane
  int never_read = 4;
  int slow_read = 4;
  int read_interval_ms = 5000;  // slow readers: one event per interval
  int rotate_ms = 30000;        // replace the oldest never-read stream this often
};

// See Scenario for threading; slow readers run on threads of their own.
class StalledWatchers : public Scenario {
 public:
  StalledWatchers(const SoakTarget& target, const WatcherOptions& options) : Scenario(target, 7), options_(options) {}
  ~StalledWatchers() override { Join(); }

 protected:
  void Run() override;

 private:
  struct Stream;
  std::unique_ptr<Stream> Open();
  void Close(Stream& stream);  // cancels, finishes and counts its status
  void SlowReader(int index);

  const WatcherOptions options_;
  std::mutex mu_;
  std::vector<Stream*> slow_streams_;  // guarded by mu_: the live stream of each slow reader, to cancel
};

}  // namespace soak
