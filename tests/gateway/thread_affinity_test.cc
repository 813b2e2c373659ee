// Loop-only methods abort when called from another thread, in the builds
// that check (debug and sanitizer builds, where the suite runs under ASan,
// UBSan and TSan); optimized builds compile the checks out.
#include <thread>

#include "gateway/event_loop.h"
#include "gateway/thread_check.h"
#include "gtest/gtest.h"

namespace gateway {
namespace {

TEST(ThreadAffinityDeathTest, LoopOnlyMethodAbortsOffItsLoopThread) {
#ifndef GATEWAY_CHECK_THREADS
  GTEST_SKIP() << "thread-affinity checks are compiled out of this build";
#else
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        EventLoop loop;
        std::thread owner([&loop] { loop.BindToCurrentThread(); });
        owner.join();
        loop.Dispatch();  // not on the thread that bound the loop
      },
      "loop-thread-only method was called from another thread");
#endif
}

TEST(ThreadAffinityTest, LoopOnlyMethodRunsOnItsLoopThread) {
  EventLoop loop;
  bool ran = false;
  std::thread owner([&] {
    loop.BindToCurrentThread();
    EXPECT_TRUE(loop.IsInLoopThread());
    absl::StatusOr<std::unique_ptr<Poller>> poller = MakePoller(IoModel::kEpoll, TriggerMode::kEdge);
    ASSERT_TRUE(poller.ok());
    ASSERT_TRUE(loop.InstallPoller(*std::move(poller)).ok());
    ASSERT_TRUE(loop.Post([&ran] { ran = true; }));
    EXPECT_EQ(loop.Wait(1000), 1);  // the eventfd
    loop.Dispatch();
    loop.Close();
  });
  owner.join();
  EXPECT_TRUE(ran);
  EXPECT_FALSE(loop.IsInLoopThread());
  EXPECT_FALSE(loop.Post([] {}));  // closed
}

}  // namespace
}  // namespace gateway
