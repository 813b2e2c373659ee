// Worker: one load-generator thread with its own epoll loop over its share of
// the connections. It opens them in bounded batches, proves each with one
// request, then drives traffic (closed loop: `pipeline` requests in flight per
// connection; open loop: requests at a fixed rate, latency measured from each
// request's intended send time; idle: nothing, only watching for closes),
// validating every response byte against the PayloadPattern.
//
// Per request the hot path does no allocation: requests are written with one
// writev per connection straight from the pattern, responses are checked in
// the receive buffer, and per-request state is two counters and a timestamp.
//
// Reconnecting mode (the documented client contract): an EOF or a reset
// reopens the connection (to the next of `targets`, if given) and resends
// every request that got no response, in order; refused connects retry with a
// short bounded backoff. After end_ns it waits up to settle_ns for the
// outstanding responses, so every request is answered exactly once or counted.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "bench/histogram.h"
#include "bench/payload.h"

namespace bench {

class Targets;

enum class Mode { kClosedLoop, kOpenLoop, kIdle };

struct WorkerOptions {
  sockaddr_storage address{};
  socklen_t address_len = 0;
  Mode mode = Mode::kClosedLoop;
  int pipeline = 1;            // requests in flight per connection (1..512)
  double rate = 0;             // open loop: requests/s for this worker's connections
  int connect_in_flight = 64;  // connections being opened or proven at once
  // Accept the empty frame "00000" (an upstream-mode gateway's error
  // response) in place of a traffic request's response: counted as an error
  // frame, the connection goes on. Off: it is a mismatch like any wrong byte.
  // A connection's proof must always be a real response.
  bool accept_error_frames = false;
  // Set (by a signal handler, say) to end Connect() and Run() early; may be null.
  const std::atomic<bool>* stop = nullptr;
  // Reconnecting mode (see the top of this file).
  bool reconnect = false;
  Targets* targets = nullptr;         // picked per connect; null: `address`
  int reconnect_attempts = 40;        // consecutive failed connects before giving up
  int64_t settle_ns = 5'000'000'000;  // after end_ns: time for outstanding responses
};

// The phase boundaries of a run, CLOCK_MONOTONIC nanoseconds. Set once by the
// coordinating thread before the workers start their Run().
struct RunClock {
  int64_t start_ns = 0;    // traffic starts (warmup)
  int64_t measure_ns = 0;  // measured window starts
  int64_t end_ns = 0;      // measured window ends, traffic stops
};

// Why connections were lost or responses rejected.
// kDuplicate (reconnecting mode only): a response with no request awaiting one.
enum ErrorKind { kMismatch, kReset, kEof, kConnect, kTimeout, kDuplicate, kNumErrorKinds };
const char* ErrorKindName(int kind);  // "mismatch", ...

// Written by the worker thread, read live by any thread (relaxed).
struct alignas(64) WorkerCounters {
  std::atomic<uint64_t> completed{0};  // traffic responses validated, whole run
  std::atomic<uint64_t> measured{0};   // ... completed inside the measured window
  std::atomic<int> established{0};     // connections proven
  std::atomic<int> lost{0};            // connections closed by an error
  std::atomic<uint64_t> errors[kNumErrorKinds] = {};
  std::atomic<uint64_t> error_frames{0};  // accepted "00000" responses, whole run
  // Reconnecting mode: events that the contract survives, and the requests
  // it could not save (failed: the connection gave up; lost: still
  // unanswered when the settle time ran out).
  std::atomic<uint64_t> reconnects{0};  // connections reopened after an EOF or reset
  std::atomic<uint64_t> refused{0};     // connects refused (or no endpoint to pick)
  std::atomic<uint64_t> resets{0};      // ECONNRESET/EPIPE on an open connection
  std::atomic<uint64_t> eofs{0};        // EOF from the server
  std::atomic<uint64_t> resent{0};      // requests written again after a reconnect
  std::atomic<uint64_t> failed{0};
  std::atomic<uint64_t> lost_requests{0};
};

int64_t NowNs();  // CLOCK_MONOTONIC

// Thread-compatible: every method runs on the worker's own thread, except
// counters(), which any thread may read while it runs, and the accessors
// read after the thread has been joined.
class Worker {
 public:
  // Connections get global ids first_conn .. first_conn + num_conns - 1.
  Worker(const WorkerOptions& options, const PayloadPattern& payload, uint32_t first_conn, int num_conns);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Opens and proves every connection; returns once each is established or
  // failed, or at `deadline_ns` (the rest then count as timeouts).
  void Connect(int64_t deadline_ns);
  // Drives traffic (or holds the connections, in idle mode) until end_ns.
  void Run(const RunClock& clock);
  // Closes every connection.
  void CloseAll();

  const WorkerCounters& counters() const { return counters_; }
  const LatencyHistogram& histogram() const { return histogram_; }
  // Open loop: requests due in the window but not answered by its end; each
  // was recorded with its age at the end as latency (a lower bound).
  uint64_t unfinished() const { return unfinished_; }

 private:
  struct Conn;
  enum class State : uint8_t { kNew, kConnecting, kProving, kReady, kBackoff, kDead };

  void Open(Conn& c);
  void OnConnected(Conn& c);
  void Dispatch(Conn& c, uint32_t events);
  // `hangup`: the event reported the peer's FIN (read on to the EOF).
  void HandleReadable(Conn& c, bool hangup);
  // Validates `n` received bytes; false on any byte that is not the expected one.
  bool Consume(Conn& c, const char* data, size_t n);
  void OnResponse(Conn& c, uint64_t seq, int64_t now);
  // Matches response header bytes against the expected header and, when
  // accepted, the error frame's; false when they match neither.
  bool MatchHeader(Conn& c, const char* data, size_t n);
  // Lets more requests go out (pipeline / schedule permitting) and writes them.
  void Refill(Conn& c, int64_t now);
  void Flush(Conn& c);
  void Fail(Conn& c, ErrorKind kind);
  // Reconnecting mode (reconnect.cc): an open connection ended (EOF or
  // reset): reopen it and resend. Otherwise the same as Fail().
  void Lost(Conn& c, ErrorKind kind);
  // A connect failed with `err`: retry after a backoff, or give up.
  void ConnectFailed(Conn& c, int err);
  // Opens the connections whose backoff is over; returns the next retry time.
  int64_t RetryDue(int64_t now);
  // Requests written or queued on live connections but not yet answered.
  uint64_t Outstanding() const;
  // Reconnecting mode: keeps the loop going past end_ns until nothing is
  // outstanding or settle_ns runs out, then counts what is left as lost.
  void Settle();
  void Poll(int64_t wait_ns);
  int64_t IntendedNs(const Conn& c, uint64_t seq) const;
  void ScheduleDue(int64_t now);
  void CountUnfinished();
  bool Stopped() const { return options_.stop != nullptr && options_.stop->load(std::memory_order_relaxed); }
  void Bump(std::atomic<uint64_t>& counter, uint64_t n = 1) {
    counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  const WorkerOptions options_;
  const PayloadPattern& payload_;
  const uint32_t frame_size_;
  int epoll_fd_ = -1;
  std::vector<Conn> conns_;
  std::vector<int64_t> send_ns_;  // per connection, a ring of `pipeline` send times
  std::unique_ptr<char[]> read_buf_;
  int connecting_ = 0;             // connections opened but not yet proven or failed
  std::vector<uint32_t> backoff_;  // indices of connections waiting to retry
  bool traffic_ = false;
  RunClock clock_;
  uint64_t issued_ = 0;  // open loop: requests scheduled so far over all connections
  uint64_t unfinished_ = 0;
  uint64_t completed_ = 0, measured_ = 0;  // published to counters_ once per loop turn
  WorkerCounters counters_;
  LatencyHistogram histogram_;
};

}  // namespace bench
