// Unit tests for gateway/buffer: Buffer growth, compaction and release, and
// BufferPool size classes, reuse and caps.
#include "gateway/buffer.h"

#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace gateway {
namespace {

std::string Contents(const Buffer& b) { return std::string(b.data(), b.size()); }

TEST(BufferTest, EmptyBufferOwnsNoMemory) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.writable(), 0u);
  BufferPool pool;
  b.Release(&pool);  // releasing nothing is fine
  EXPECT_EQ(pool.free_bytes(), 0u);
}

TEST(BufferTest, AppendConsumeAndRewind) {
  BufferPool pool;
  Buffer b;
  b.Append("hello world", 11, &pool);
  EXPECT_EQ(Contents(b), "hello world");
  EXPECT_EQ(b.capacity(), BufferPool::kMinBlock);
  b.Consume(6);
  EXPECT_EQ(Contents(b), "world");
  EXPECT_EQ(b.writable(), BufferPool::kMinBlock - 11);
  b.Consume(5);
  EXPECT_TRUE(b.empty());
  // An emptied buffer rewinds: the whole block is writable again.
  EXPECT_EQ(b.writable(), BufferPool::kMinBlock);
  b.Release(&pool);
}

TEST(BufferTest, EnsureWritableCompactsInsteadOfGrowing) {
  BufferPool pool;
  Buffer b;
  const std::string first(3000, 'a');
  b.Append(first.data(), first.size(), &pool);
  b.Consume(2000);  // 1000 bytes left at offset 2000
  const char* block_before = b.data() - 2000;
  ASSERT_EQ(b.writable(), BufferPool::kMinBlock - 3000);
  b.EnsureWritable(2500, &pool);  // fits once the front is reclaimed
  EXPECT_EQ(b.capacity(), BufferPool::kMinBlock);
  EXPECT_EQ(b.data(), block_before);  // moved to the front of the same block
  EXPECT_GE(b.writable(), 2500u);
  EXPECT_EQ(Contents(b), std::string(1000, 'a'));
  b.Release(&pool);
}

TEST(BufferTest, EnsureWritableGrowsAndKeepsContents) {
  BufferPool pool;
  Buffer b;
  std::string data;
  for (int i = 0; i < 3000; ++i) data.push_back(static_cast<char>(i * 7));
  b.Append(data.data(), data.size(), &pool);
  b.Consume(100);
  b.EnsureWritable(10000, &pool);
  EXPECT_EQ(Contents(b), data.substr(100));
  EXPECT_GE(b.writable(), 10000u);
  EXPECT_EQ(b.capacity(), 16384u);  // 2900 + 10000 rounded up to a power of two
  // The old block went back to the pool.
  EXPECT_EQ(pool.free_bytes(), BufferPool::kMinBlock);
  b.Release(&pool);
  EXPECT_EQ(pool.free_bytes(), BufferPool::kMinBlock + 16384u);
}

TEST(BufferTest, ProduceAfterWritePtr) {
  BufferPool pool;
  Buffer b;
  b.EnsureWritable(5, &pool);
  std::memcpy(b.write_ptr(), "12345", 5);
  b.Produce(5);
  EXPECT_EQ(Contents(b), "12345");
  b.Release(&pool);
}

TEST(BufferTest, ReleaseIfEmptyKeepsANonEmptyBuffer) {
  BufferPool pool;
  Buffer b;
  b.Append("abc", 3, &pool);
  b.ReleaseIfEmpty(&pool);
  EXPECT_EQ(Contents(b), "abc");
  EXPECT_EQ(pool.free_bytes(), 0u);
  b.Consume(3);
  b.ReleaseIfEmpty(&pool);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(pool.free_bytes(), BufferPool::kMinBlock);
}

TEST(BufferTest, ReleaseDropsContents) {
  BufferPool pool;
  Buffer b;
  b.Append("abc", 3, &pool);
  b.Release(&pool);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(pool.free_bytes(), BufferPool::kMinBlock);
}

TEST(BufferTest, LargerThanTheLargestClass) {
  BufferPool pool;
  Buffer b;
  const size_t big = BufferPool::kMaxBlock + 1;
  std::string data(big, 'x');
  data.back() = 'y';
  b.Append(data.data(), data.size(), &pool);
  EXPECT_EQ(b.size(), big);
  EXPECT_EQ(b.capacity(), big);  // exact size, straight from the heap
  EXPECT_EQ(Contents(b), data);
  b.Release(&pool);
  EXPECT_EQ(pool.free_bytes(), 0u);  // not a pooled size: freed
}

TEST(BufferPoolTest, SizeClasses) {
  BufferPool pool;
  struct Case {
    size_t request;
    size_t capacity;
  };
  for (const Case& c : {Case{0, 4096}, Case{1, 4096}, Case{4096, 4096}, Case{4097, 8192}, Case{100004, 131072},
                        Case{BufferPool::kMaxBlock, BufferPool::kMaxBlock},
                        Case{BufferPool::kMaxBlock + 1, BufferPool::kMaxBlock + 1}}) {
    size_t capacity = 0;
    char* block = pool.Acquire(c.request, &capacity);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(capacity, c.capacity) << c.request;
    block[capacity - 1] = 'x';  // the whole capacity is usable
    pool.Release(block, capacity);
  }
}

TEST(BufferPoolTest, ReusesReleasedBlocks) {
  BufferPool pool;
  size_t capacity = 0;
  char* a = pool.Acquire(5000, &capacity);
  pool.Release(a, capacity);
  EXPECT_EQ(pool.free_bytes(), 8192u);
  size_t capacity2 = 0;
  char* b = pool.Acquire(6000, &capacity2);
  EXPECT_EQ(b, a);  // same class: the free block comes back
  EXPECT_EQ(capacity2, 8192u);
  EXPECT_EQ(pool.free_bytes(), 0u);
  // Another class does not take it.
  pool.Release(b, capacity2);
  size_t capacity3 = 0;
  char* c = pool.Acquire(100, &capacity3);
  EXPECT_NE(c, b);
  EXPECT_EQ(pool.free_bytes(), 8192u);
  pool.Release(c, capacity3);
}

TEST(BufferPoolTest, FreeListsAreCapped) {
  BufferPool pool;
  // 4 KiB blocks: at most kMaxFreeBytesPerClass / 4 KiB of them are kept.
  const size_t keep = BufferPool::kMaxFreeBytesPerClass / BufferPool::kMinBlock;
  std::vector<char*> blocks;
  for (size_t i = 0; i < keep + 10; ++i) {
    size_t capacity = 0;
    blocks.push_back(pool.Acquire(1, &capacity));
  }
  for (char* block : blocks) pool.Release(block, BufferPool::kMinBlock);
  EXPECT_EQ(pool.free_bytes(), BufferPool::kMaxFreeBytesPerClass);
  // The largest class keeps exactly one block (1 MiB cap).
  size_t c1 = 0, c2 = 0;
  char* big1 = pool.Acquire(BufferPool::kMaxBlock, &c1);
  char* big2 = pool.Acquire(BufferPool::kMaxBlock, &c2);
  pool.Release(big1, c1);
  pool.Release(big2, c2);
  EXPECT_EQ(pool.free_bytes(), 2 * BufferPool::kMaxFreeBytesPerClass);
}

TEST(BufferPoolTest, ReleasingANonClassSizeFreesIt) {
  BufferPool pool;
  pool.Release(new char[5000], 5000);  // not a power of two
  pool.Release(new char[1024], 1024);  // below the smallest class
  EXPECT_EQ(pool.free_bytes(), 0u);
}

}  // namespace
}  // namespace gateway
