// A load generator that checks every response: N pipelined connections to a
// gateway, each sending distinct payloads ("c<conn>-<seq>-<random>") and
// verifying that its responses come back one per request, in order, each
// either the reversed payload or (as upstream mode's error response) the
// empty frame. Truncation, duplication, reordering, stray bytes, resets and
// unexpected EOFs are recorded as violations. Bounded in count and time.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gateway/upstream_types.h"

namespace gateway::testing {

struct LoadOptions {
  int port = 0;
  int connections = 8;
  int depth = 16;  // requests in flight per connection
  size_t min_payload = 24;
  size_t max_payload = 300;
  uint64_t seed = 1;
  uint64_t max_requests = 5000000;  // per connection: bounds a broken run
  // Requests per second over all connections (0: as fast as answers come),
  // so a long wait in a test does not burn a shared machine's cores.
  uint64_t max_rate = 0;
  // kEmptyFrame: "00000" is an error response and EOF a violation. kClose:
  // "00000" is a violation and EOF with requests outstanding ends that
  // connection (counted in closed/lost).
  UpstreamErrorMode error_mode = UpstreamErrorMode::kEmptyFrame;
};

struct LoadReport {
  uint64_t sent = 0;
  uint64_t ok = 0;
  uint64_t errors = 0;                  // empty frames
  uint64_t resets = 0;                  // ECONNRESET/EPIPE on a client connection
  uint64_t closed = 0;                  // kClose: connections the gateway closed with requests outstanding
  uint64_t lost = 0;                    // kClose: requests outstanding on them
  bool drained = false;                 // every request of every live connection answered by the deadline
  std::vector<std::string> violations;  // the first few, for the failure message
  uint64_t answered() const { return ok + errors; }
};

// Thread-safe getters; Start() and Finish() from the test thread. Owns one
// thread driving every connection with poll(), and the sockets.
class CheckingLoad {
 public:
  // Connects every connection (blocking, bounded) and starts sending.
  static absl::StatusOr<std::unique_ptr<CheckingLoad>> Start(const LoadOptions& options);
  ~CheckingLoad();  // Finish(now + 10 s) if not finished
  CheckingLoad(const CheckingLoad&) = delete;
  CheckingLoad& operator=(const CheckingLoad&) = delete;

  uint64_t sent() const { return sent_.load(); }
  uint64_t ok() const { return ok_.load(); }
  uint64_t errors() const { return errors_.load(); }
  uint64_t answered() const { return ok() + errors(); }
  uint64_t violations() const { return violation_count_.load(); }
  // Waits until `n` responses (ok or error) have arrived in all; false at the
  // deadline or once a violation has been seen.
  bool AwaitAnswered(uint64_t n, absl::Time deadline) const;
  // Stops sending, waits until every outstanding request of every live
  // connection is answered (or `deadline`), closes everything, and reports.
  LoadReport Finish(absl::Time deadline);

 private:
  struct Conn;
  explicit CheckingLoad(const LoadOptions& options);
  void Run();
  void Fill(Conn& c);
  void WriteSome(Conn& c);
  void ReadSome(Conn& c);
  void Parse(Conn& c);
  void Violation(Conn& c, std::string what);
  bool Quiet() const;

  const LoadOptions options_;
  std::vector<std::unique_ptr<Conn>> conns_;
  std::thread thread_;
  absl::Time started_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> finish_deadline_ns_{0};
  std::atomic<bool> done_{false};
  std::atomic<uint64_t> sent_{0}, ok_{0}, errors_{0}, violation_count_{0};
  // Written by the load thread only; read after join.
  LoadReport report_;
  mutable std::mutex mu_;  // guards report_.violations
  bool finished_ = false;
};

// A one-line summary for failure messages: counts and the first violations.
std::string Describe(const LoadReport& report);

}  // namespace gateway::testing
