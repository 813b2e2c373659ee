// The block every read of a reactor lands in first.
#pragma once

#include <cstddef>

#include "gateway/buffer.h"
#include "gateway/frame_codec.h"

namespace gateway {

// Loop-thread only; one per reactor. A pool block big enough for any whole
// frame: complete frames are answered where they landed, so most requests
// never touch a connection's own buffers.
class ReadScratch {
 public:
  static constexpr size_t kSize = 128 * 1024;
  static_assert(kSize >= kMaxFrameSize && kSize <= BufferPool::kMaxBlock);

  explicit ReadScratch(BufferPool* pool) : pool_(pool) {
    size_t capacity = 0;
    block_ = pool_->Acquire(kSize, &capacity);
    pool_->Exempt(kSize);  // the reactor's own block: not held by a connection
  }
  ~ReadScratch() {
    pool_->Exempt(-static_cast<int64_t>(kSize));
    pool_->Release(block_, kSize);
  }
  ReadScratch(const ReadScratch&) = delete;
  ReadScratch& operator=(const ReadScratch&) = delete;

  char* data() { return block_; }

  // Hands the block over (to become a connection's input buffer, which saves
  // copying a large partial frame) and takes a fresh one from the pool. The
  // taken block is counted as the connection's from now on (by the Acquire).
  char* Take() {
    char* taken = block_;
    size_t capacity = 0;
    block_ = pool_->Acquire(kSize, &capacity);
    return taken;
  }

 private:
  BufferPool* const pool_;
  char* block_;
};

}  // namespace gateway
