// A blocking-style TCP test client for the gateway's framed protocol, with
// every wait bounded by a deadline, plus small helpers shared by the data-plane
// tests (frame building, waiting for a condition, finding a client's
// server-side connection). Reusable by any test that talks to a gateway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gateway/gateway.h"
#include "gateway/reactor_stats.h"
#include "gateway/types.h"
#include "tests/support/loopback.h"

namespace gateway::testing {

// The default bound for one step of a test (a connect, a read, a write).
inline constexpr absl::Duration kStepTimeout = absl::Seconds(20);

inline absl::Time Deadline(absl::Duration d = kStepTimeout) { return absl::Now() + d; }

// One client connection over loopback. The socket is non-blocking inside;
// each call polls until it is done or its deadline passes. Thread-compatible:
// one thread reads while another writes is fine (they touch different
// directions of the socket), two readers are not. Owns the fd.
class TestClient {
 public:
  // Connects to 127.0.0.1:`port` (or `host`, an IPv4 or IPv6 literal such as
  // "::1"), waiting at most until `deadline`.
  static absl::StatusOr<TestClient> Connect(int port, absl::Time deadline = Deadline(),
                                            absl::string_view host = "127.0.0.1");

  // The server side of a connection to `listen_fd` (a fake backend's), once
  // one arrives before `deadline`.
  static absl::StatusOr<TestClient> Accept(int listen_fd, absl::Time deadline = Deadline());

  TestClient() = default;
  ~TestClient();
  TestClient(TestClient&& other) noexcept;
  TestClient& operator=(TestClient&& other) noexcept;
  TestClient(const TestClient&) = delete;
  TestClient& operator=(const TestClient&) = delete;

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  // The client's local port.
  int local_port() const;
  // Our address as the server reports the peer: "127.0.0.1:port", "[::1]:port".
  std::string peer_name() const;

  // Writes every byte of `data`.
  absl::Status WriteAll(absl::string_view data, absl::Time deadline = Deadline());
  // Writes `data` in pieces of `piece` bytes, each its own send() with
  // TCP_NODELAY set, so the server is likely to see several reads.
  absl::Status WriteInPieces(absl::string_view data, size_t piece, absl::Time deadline = Deadline());
  // Reads exactly `n` bytes. An EOF before that is OUT_OF_RANGE (with the
  // bytes read so far in the message size), a reset is UNAVAILABLE.
  absl::StatusOr<std::string> ReadExactly(size_t n, absl::Time deadline = Deadline());
  // Reads until EOF and returns everything read. At most `max_bytes`.
  absl::StatusOr<std::string> ReadUntilEof(absl::Time deadline = Deadline(), size_t max_bytes = 64 << 20);
  // Reads one response frame and returns its payload ("" for upstream
  // mode's error response, the empty frame 00000).
  absl::StatusOr<std::string> ReadFrame(absl::Time deadline = Deadline());
  // Sends one frame with `payload` and returns the response payload.
  absl::StatusOr<std::string> RoundTrip(absl::string_view payload, absl::Time deadline = Deadline());
  // OK if the next thing on the socket is EOF (not data, not a reset).
  absl::Status ExpectEof(absl::Time deadline = Deadline());

  // Half-close: sends FIN, keeps reading.
  absl::Status ShutdownWrite();
  // Makes close() send RST instead of FIN (SO_LINGER with a zero timeout).
  absl::Status SetLingerZero();
  // Sets SO_RCVBUF (before connecting matters most; here it is after, which
  // still caps the window the kernel advertises from now on).
  absl::Status SetReceiveBuffer(int bytes);
  // Bytes written but not yet acknowledged by the peer's kernel (SIOCOUTQ).
  absl::StatusOr<int> UnackedBytes() const;
  void Close();

 private:
  explicit TestClient(int fd) : fd_(fd) {}
  // Waits for `events` on the socket; DEADLINE_EXCEEDED if `deadline` passes.
  absl::Status WaitFor(short events, absl::Time deadline) const;

  int fd_ = -1;
};

// `payload` backwards: what the reverse service answers.
std::string Reversed(absl::string_view payload);
// The bytes of one request frame (5-digit header + payload).
std::string Frame(absl::string_view payload);
// The bytes of the response the reverse service gives to Frame(payload).
std::string ReversedFrame(absl::string_view payload);
// `size` pseudo-random bytes (all 256 values possible) from `rng`.
std::string RandomBytes(std::mt19937_64& rng, size_t size);

// Polls `condition` every millisecond or so until it holds or `deadline`
// passes; returns whether it held.
bool WaitUntil(const std::function<bool()>& condition, absl::Time deadline = Deadline());

// Waits until the peer's TCP has acknowledged every byte `client` wrote (so
// the peer's socket has it, and was made readable); returns whether it did.
bool AwaitAcked(const TestClient& client, absl::Time deadline = Deadline());

// Creates and starts an in-process gateway with `options`, listening on
// `listen` (loopback, ephemeral port) instead of options.listen_address.
absl::StatusOr<std::unique_ptr<Gateway>> StartTestGateway(GatewayOptions options,
                                                          absl::string_view listen = "127.0.0.1:0");

// Waits until `gw` lists a connection whose peer is `client` and returns it.
absl::StatusOr<ConnectionInfo> FindConnection(Gateway& gw, const TestClient& client, absl::Time deadline = Deadline());

// Sums one counter across all reactors of `gw`:
// SumStat(gw, &ReactorStats::frames_in).
uint64_t SumStat(const Gateway& gw, RelaxedCounter ReactorStats::*counter);
// Sums what `get` reads from each reactor's stats.
uint64_t SumStat(const Gateway& gw, const std::function<uint64_t(const ReactorStats&)>& get);
uint64_t ClosedCount(const Gateway& gw, CloseReason reason);

}  // namespace gateway::testing

namespace gateway {
// Names parameterized tests' trigger modes "edge" / "level" in test output.
inline void PrintTo(TriggerMode mode, std::ostream* os) { *os << TriggerModeName(mode); }
}  // namespace gateway
