// Counters every reactor of one gateway shares.
#pragma once

#include <atomic>
#include <cstdint>

namespace gateway {

// Thread-safe (atomics): touched on accept and close, and when buffer blocks
// are taken or given back.
struct SharedCounters {
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> next_id{1};
  std::atomic<int64_t> queued_bytes{0};  // every reactor's BufferPool::outstanding_bytes()
  // Out of fds: the connections open when accept() last failed with
  // EMFILE/ENFILE, and until when (monotonic ns) no more are admitted. While
  // it holds, a connection another reactor accepts with the fd a reactor
  // freed to shed with is closed at once, so the fd comes back for the
  // shedding reactor's spare instead of being kept.
  std::atomic<int64_t> fd_ceiling{0};
  std::atomic<int64_t> fd_ceiling_until_ns{0};
};

}  // namespace gateway
