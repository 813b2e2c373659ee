// A misbehaving backend on 127.0.0.1: a TCP server in a thread of the test
// that reads request frames and answers them wrongly (a non-digit header, the
// empty frame, a truncated frame then close, every response twice, or a
// reset after the first response), or rightly but one byte per send.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "tests/support/loopback.h"

namespace gateway::testing {

enum class Garbage {
  kNotDigits,   // answers "zzzzz" and keeps the connection open
  kEmptyFrame,  // answers "00000" (no real response is empty)
  kTruncated,   // answers a header announcing 50 bytes, 10 of them, then FIN
  kDuplicate,   // answers the right response twice
  kReset,       // answers the first request right, then resets the connection
  kDribble,     // answers right, one byte per send (not garbage: a slow writer)
};
std::string GarbageName(Garbage garbage);

// Test-thread API; owns one server thread and every socket it accepted.
class GarbageBackend {
 public:
  static absl::StatusOr<std::unique_ptr<GarbageBackend>> Start(Garbage garbage);
  ~GarbageBackend();  // stops the thread, closes everything
  GarbageBackend(const GarbageBackend&) = delete;
  GarbageBackend& operator=(const GarbageBackend&) = delete;

  int port() const { return listener_.port(); }
  std::string address() const;  // "127.0.0.1:port"
  // Connections accepted so far (upstream and probe connections alike).
  int accepted() const { return accepted_.load(); }

 private:
  GarbageBackend(Garbage garbage, LoopbackSocket listener) : garbage_(garbage), listener_(std::move(listener)) {}
  void Run();

  const Garbage garbage_;
  LoopbackSocket listener_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
};

}  // namespace gateway::testing
