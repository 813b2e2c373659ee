#include "gateway/buffer.h"

#include <bit>
#include <cassert>
#include <cstring>

namespace gateway {

BufferPool::~BufferPool() {
  for (auto& list : free_) {
    for (char* block : list) delete[] block;
  }
}

int BufferPool::ClassOf(size_t capacity) {
  if (capacity < kMinBlock || capacity > kMaxBlock || !std::has_single_bit(capacity)) return -1;
  return std::countr_zero(capacity) - std::countr_zero(kMinBlock);
}

void BufferPool::Count(int64_t delta) {
  outstanding_ += delta;
  if (mine_ != nullptr) mine_->Add(delta);
  if (total_ != nullptr) total_->fetch_add(delta, std::memory_order_relaxed);
}

char* BufferPool::Acquire(size_t size, size_t* capacity) {
  if (size > kMaxBlock) {
    *capacity = size;
    Count(static_cast<int64_t>(size));
    return new char[size];
  }
  const size_t rounded = size <= kMinBlock ? kMinBlock : std::bit_ceil(size);
  *capacity = rounded;
  Count(static_cast<int64_t>(rounded));
  auto& list = free_[ClassOf(rounded)];
  if (list.empty()) return new char[rounded];
  char* block = list.back();
  list.pop_back();
  return block;
}

void BufferPool::Release(char* block, size_t capacity) {
  Count(-static_cast<int64_t>(capacity));
  const int cls = ClassOf(capacity);
  if (cls < 0 || (free_[cls].size() + 1) * capacity > kMaxFreeBytesPerClass) {
    delete[] block;
    return;
  }
  free_[cls].push_back(block);
}

size_t BufferPool::free_bytes() const {
  size_t total = 0;
  for (int i = 0; i < kNumClasses; ++i) total += free_[i].size() * (kMinBlock << i);
  return total;
}

Buffer::~Buffer() {
  assert(data_ == nullptr && "Buffer destroyed without Release()");
  delete[] data_;  // release builds: never leak
}

void Buffer::EnsureWritable(size_t n, BufferPool* pool) {
  if (writable() >= n) return;
  const size_t used = size();
  if (data_ != nullptr && capacity_ - used >= n) {
    std::memmove(data_, data_ + read_, used);
    read_ = 0;
    write_ = static_cast<uint32_t>(used);
    return;
  }
  size_t capacity = 0;
  char* block = pool->Acquire(used + n, &capacity);
  if (used > 0) std::memcpy(block, data_ + read_, used);
  if (data_ != nullptr) pool->Release(data_, capacity_);
  data_ = block;
  capacity_ = static_cast<uint32_t>(capacity);
  read_ = 0;
  write_ = static_cast<uint32_t>(used);
}

void Buffer::Consume(size_t n) {
  read_ += static_cast<uint32_t>(n);
  if (read_ == write_) read_ = write_ = 0;
}

void Buffer::Append(const char* bytes, size_t n, BufferPool* pool) {
  EnsureWritable(n, pool);
  std::memcpy(write_ptr(), bytes, n);
  Produce(n);
}

void Buffer::Adopt(char* block, size_t capacity, size_t begin, size_t end, BufferPool* pool) {
  assert(empty());
  Release(pool);
  data_ = block;
  capacity_ = static_cast<uint32_t>(capacity);
  read_ = static_cast<uint32_t>(begin);
  write_ = static_cast<uint32_t>(end);
}

void Buffer::ReleaseIfEmpty(BufferPool* pool) {
  if (empty()) Release(pool);
}

void Buffer::Release(BufferPool* pool) {
  if (data_ != nullptr) pool->Release(data_, capacity_);
  data_ = nullptr;
  capacity_ = read_ = write_ = 0;
}

}  // namespace gateway
