// The soak's hostile clients on the data plane: RstStorm (connections that
// send nothing, part of a frame, whole frames, a bad header or a pile of
// large pipelined frames, then reset) and Slowloris (connections trickling a
// frame one byte at a time, which the gateway's --frame_timeout must close).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/soak/scenario.h"

namespace soak {

// See Scenario for threading.
class RstStorm : public Scenario {
 public:
  RstStorm(const SoakTarget& target, double per_second) : Scenario(target, 3), per_second_(per_second) {}
  ~RstStorm() override { Join(); }

 protected:
  void Run() override;

 private:
  void OneConnection();

  const double per_second_;
  int logged_ = 0;
};

struct SlowlorisOptions {
  int conns = 16;
  int byte_interval_ms = 1000;  // one byte per interval
  // The gateway's --frame_timeout, if it has one: a connection still open this
  // long plus a grace period after its first byte counts as overdue. 0 = the
  // gateway is not expected to time frames out.
  int frame_timeout_ms = 0;
  int grace_ms = 10000;
};

// See Scenario for threading.
class Slowloris : public Scenario {
 public:
  Slowloris(const SoakTarget& target, const SlowlorisOptions& options) : Scenario(target, 4), options_(options) {}
  ~Slowloris() override { Join(); }

 protected:
  void Run() override;

 private:
  struct Trickler {
    int fd = -1;
    std::string request;   // the whole frame, sent one byte at a time
    std::string response;  // its correct answer
    size_t sent = 0;
    size_t received = 0;
    Clock::time_point first_byte{};
    Clock::time_point next_byte{};
    bool overdue = false;
  };

  void Open(Trickler& t, Clock::time_point now);
  // Advances one connection; returns false once it has ended (and been
  // counted and closed).
  bool Step(Trickler& t, Clock::time_point now);
  void Finish(Trickler& t);

  const SlowlorisOptions options_;
  int logged_ = 0;
};

}  // namespace soak
