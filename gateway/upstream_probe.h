// One backend's active health check: a persistent TCP connection to it and
// the probe round trip over it (send one frame, read one frame back), driven
// by poll() readiness. UpstreamProber runs many of these on its thread.
#pragma once

#include <poll.h>

#include <chrono>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "gateway/socket_util.h"

namespace gateway {

// What one probe round found.
struct ProbeResult {
  std::string address;                    // "host:port" as given
  bool ok = false;                        // a well-formed, non-empty response frame arrived in time
  std::string error;                      // "" if ok, else what went wrong ("connect: Connection refused", ...)
  std::optional<SocketAddress> resolved;  // the address connected (or tried) this round
};

// Prober-thread only (thread-compatible); owns its socket. Never blocks,
// except in getaddrinfo when the host is a name that is not in the cache.
class UpstreamProbe {
 public:
  using Clock = std::chrono::steady_clock;

  // `payload` is sent as one frame each round (1..kMaxPayload bytes).
  UpstreamProbe(std::string address, absl::Duration timeout, const std::string& payload);
  ~UpstreamProbe();
  UpstreamProbe(const UpstreamProbe&) = delete;
  UpstreamProbe& operator=(const UpstreamProbe&) = delete;

  const std::string& address() const { return address_; }
  bool in_round() const { return phase_ != Phase::kIdle; }

  // Starts a round: connects if there is no connection, then sends the
  // probe. Returns the result when the round ends at once (a failure).
  std::optional<ProbeResult> Begin(Clock::time_point now);

  // The socket to poll and what for; fd -1 when there is nothing to wait on.
  // Between rounds an open connection is watched for the backend closing it.
  pollfd PollRequest() const;
  // Handles poll()'s `revents` for PollRequest(); returns the result when
  // the round ended.
  std::optional<ProbeResult> OnReady(short revents, Clock::time_point now);

  // When the current round (or its connect) times out; nullopt between rounds.
  std::optional<Clock::time_point> deadline() const;
  // Ends the round as timed out if `now` is past deadline().
  std::optional<ProbeResult> OnTick(Clock::time_point now);

 private:
  enum class Phase { kIdle, kConnecting, kSending, kReceiving };

  std::optional<ProbeResult> Connect(Clock::time_point now);
  std::optional<ProbeResult> FinishConnect(Clock::time_point now);
  std::optional<ProbeResult> StartExchange(Clock::time_point now);
  std::optional<ProbeResult> Send();
  std::optional<ProbeResult> Receive();
  std::optional<ProbeResult> CheckResponse();
  void DrainIdle();
  ProbeResult Succeed();
  ProbeResult Fail(std::string error);  // closes the connection
  void CloseSocket();

  const std::string address_;
  const absl::Duration timeout_;
  const std::string frame_;  // header + payload
  int fd_ = -1;
  Phase phase_ = Phase::kIdle;
  Clock::time_point deadline_;
  size_t sent_ = 0;
  std::string received_;
  std::optional<SocketAddress> resolved_;
};

}  // namespace gateway
