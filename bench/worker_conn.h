// Worker::Conn, shared by worker.cc and reconnect.cc (private to the worker).
#pragma once

#include <cstdint>

#include "bench/worker.h"

namespace bench {

struct Worker::Conn {
  int fd = -1;
  uint32_t id = 0;     // global, for payload offsets
  uint32_t index = 0;  // in this worker
  State state = State::kNew;
  bool want_write = false;   // a write fell short: wait for EPOLLOUT
  uint32_t out_pos = 0;      // bytes of request out_seq already written
  uint32_t recv_pos = 0;     // bytes of response recv_seq already validated
  uint32_t recv_offset = 0;  // payload offset of response recv_seq
  uint8_t header_match = 0;  // kMatch* bits, while recv_pos < kHeaderSize
  uint64_t out_seq = 0;
  uint64_t queued = 0;
  uint64_t recv_seq = 0;
  uint64_t scheduled = 1;  // open loop: requests below this are due
  // Reconnecting mode.
  uint32_t failures = 0;    // connects failed in a row (or ended before any response)
  bool progressed = false;  // a response arrived since the last connect
  int64_t retry_ns = 0;     // kBackoff: when to connect again
};

}  // namespace bench
