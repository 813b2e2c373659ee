// Byte buffers for connections. A Buffer is a contiguous region with read and
// write indices; it owns no memory while empty, so an idle connection costs
// only the Buffer object itself. Blocks come from a per-reactor BufferPool so
// that a busy connection cycling between empty and non-empty does not hit the
// heap on every request.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gateway/reactor_stats.h"

namespace gateway {

// Free lists of blocks in power-of-two size classes, 4 KiB to 1 MiB, each list
// capped at kMaxFreeBytesPerClass. Loop-thread only; one per reactor.
//
// Counts the bytes of the blocks it has handed out (and not got back): in its
// own single-writer gauge, read by metrics, and in a total shared by every
// reactor, which the global --max_queued_bytes budget is checked against.
class BufferPool {
 public:
  static constexpr size_t kMinBlock = 4096;
  static constexpr int kNumClasses = 9;  // 4 KiB << 0..8
  static constexpr size_t kMaxBlock = kMinBlock << (kNumClasses - 1);
  static constexpr size_t kMaxFreeBytesPerClass = 1 << 20;

  // `total` (shared, any thread) and `mine` (this pool's) may be null.
  explicit BufferPool(std::atomic<int64_t>* total = nullptr, RelaxedGauge* mine = nullptr)
      : total_(total), mine_(mine) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // Returns a block of at least `size` bytes, and its capacity in `*capacity`.
  // Sizes above kMaxBlock come straight from the heap. Never returns null.
  char* Acquire(size_t size, size_t* capacity);
  // Gives back a block obtained from Acquire() with that capacity.
  void Release(char* block, size_t capacity);

  size_t free_bytes() const;
  // Bytes in blocks handed out and not yet given back, less exempt ones.
  int64_t outstanding_bytes() const { return outstanding_; }
  // Leaves `bytes` of handed-out blocks out of the counts (the owner's own
  // working block, not what connections hold); a negative value counts
  // them again.
  void Exempt(int64_t bytes) { Count(-bytes); }

 private:
  static int ClassOf(size_t capacity);  // -1 if not a pooled size
  void Count(int64_t delta);

  std::array<std::vector<char*>, kNumClasses> free_;
  std::atomic<int64_t>* const total_;
  RelaxedGauge* const mine_;
  int64_t outstanding_ = 0;
};

// Contiguous bytes [read, write) inside one block. Loop-thread only; the
// caller passes the pool so the buffer itself stays 24 bytes.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();  // the owner must have called Release() (asserted in debug)

  bool empty() const { return read_ == write_; }
  size_t size() const { return write_ - read_; }
  size_t capacity() const { return capacity_; }
  char* data() { return data_ + read_; }
  const char* data() const { return data_ + read_; }

  // Free room after the readable bytes.
  char* write_ptr() { return data_ + write_; }
  size_t writable() const { return capacity_ - write_; }

  // Makes at least `n` bytes writable, compacting or moving to a larger block.
  void EnsureWritable(size_t n, BufferPool* pool);
  // Marks `n` bytes written at write_ptr() as readable.
  void Produce(size_t n) { write_ += static_cast<uint32_t>(n); }
  // Drops `n` readable bytes from the front; an emptied buffer rewinds.
  void Consume(size_t n);
  void Append(const char* bytes, size_t n, BufferPool* pool);
  // Takes ownership of `block` (from `pool`, `capacity` bytes) holding
  // readable bytes [begin, end). The buffer must be empty.
  void Adopt(char* block, size_t capacity, size_t begin, size_t end, BufferPool* pool);
  // Returns the block to the pool if the buffer is empty.
  void ReleaseIfEmpty(BufferPool* pool);
  // Drops the contents and returns the block to the pool.
  void Release(BufferPool* pool);

 private:
  char* data_ = nullptr;
  uint32_t capacity_ = 0;
  uint32_t read_ = 0;
  uint32_t write_ = 0;
};

}  // namespace gateway
