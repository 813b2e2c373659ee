// GATEWAY_ASSERT_IN_LOOP(loop): aborts when a loop-only method runs on
// another thread. On in debug and sanitizer builds (where the suite runs
// with ASan, UBSan and TSan), compiled out of optimized builds.
#pragma once

#if !defined(NDEBUG) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GATEWAY_CHECK_THREADS 1
#elif defined(__has_feature)  // clang names its sanitizers this way
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define GATEWAY_CHECK_THREADS 1
#endif
#endif

#ifdef GATEWAY_CHECK_THREADS
#define GATEWAY_ASSERT_IN_LOOP(loop) (loop).AssertInLoopThread()
#else
#define GATEWAY_ASSERT_IN_LOOP(loop) ((void)0)
#endif
