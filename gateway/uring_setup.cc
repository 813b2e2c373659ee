#include "gateway/uring_setup.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"

// Flags newer than some liburing headers; the kernel decides (EINVAL if not).
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

namespace gateway {

int SetUpUring(io_uring* ring) {
  // DEFER_TASKRUN runs completions only when this thread enters the kernel to
  // wait (once per loop turn) instead of interrupting it; COOP_TASKRUN is the
  // weaker form older kernels have.
  constexpr unsigned kTaskRunFlags[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  int result = -EINVAL;
  for (unsigned task_run : kTaskRunFlags) {
    io_uring_params params{};
    params.flags = task_run | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    params.cq_entries = kUringCqEntries;
    result = io_uring_queue_init_params(kUringSqEntries, ring, &params);
    if (result != -EINVAL) return result;
  }
  return result;
}

absl::Status UringSetupError(int err) {
  const char* name = strerrorname_np(err);
  std::string text = absl::StrCat("io_uring_setup: ", std::strerror(err), " (", name != nullptr ? name : "?", "): ");
  switch (err) {
    case EPERM:
      absl::StrAppend(&text,
                      "io_uring is refused here (kernel.io_uring_disabled, or a container seccomp profile: run the "
                      "container with deploy/seccomp/io_uring.json)");
      break;
    case ENOSYS:
      absl::StrAppend(&text,
                      "io_uring is not available (a kernel built without it, or a container seccomp profile such as "
                      "Podman's default: run the container with deploy/seccomp/io_uring.json)");
      break;
    case ENOMEM: absl::StrAppend(&text, "no memory for the ring (raise RLIMIT_MEMLOCK on kernels before 5.12)"); break;
    default: absl::StrAppend(&text, "this kernel cannot run the io_uring back-end (Linux 6.0 or newer needed)"); break;
  }
  absl::StrAppend(&text, "; use --io_model=epoll");
  return absl::FailedPreconditionError(text);
}

absl::Status ProbeUring() {
  io_uring ring;
  if (const int result = SetUpUring(&ring); result < 0) return UringSetupError(-result);
  // Multishot receive into a buffer ring is the back-end's core: check the
  // kernel has the ops it submits (multishot recv itself needs Linux 6.0).
  absl::Status status;
  if (io_uring_probe* probe = io_uring_get_probe_ring(&ring); probe != nullptr) {
    for (int op : {IORING_OP_RECV, IORING_OP_SEND, IORING_OP_ACCEPT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL}) {
      if (!io_uring_opcode_supported(probe, op)) {
        status = absl::FailedPreconditionError(
            absl::StrCat("io_uring: this kernel lacks opcode ", op, "; use --io_model=epoll"));
      }
    }
    io_uring_free_probe(probe);
  }
  if (status.ok()) {
    UringBufferRing buffers;
    if (const int result = buffers.Register(&ring); result < 0) {
      status = absl::FailedPreconditionError(absl::StrCat("io_uring_register_buf_ring: ", std::strerror(-result),
                                                          " (Linux 5.19 or newer needed); use --io_model=epoll"));
    } else {
      buffers.Unregister(&ring);
    }
  }
  io_uring_queue_exit(&ring);
  return status;
}

UringBufferRing::~UringBufferRing() {
  if (leaked_) {
    // Kept reachable, so leak checkers do not count what is kept on purpose.
    static std::mutex mu;
    static auto* kept = new std::vector<void*>();
    std::lock_guard<std::mutex> lock(mu);
    kept->push_back(ring_);
    kept->push_back(buffers_);
    return;
  }
  std::free(ring_);
  std::free(buffers_);
}

int UringBufferRing::Register(io_uring* ring) {
  const long page = sysconf(_SC_PAGESIZE);
  const size_t alignment = page > 0 ? static_cast<size_t>(page) : 4096;
  void* ring_memory = nullptr;
  if (posix_memalign(&ring_memory, alignment, kCount * sizeof(io_uring_buf)) != 0) return -ENOMEM;
  ring_ = static_cast<io_uring_buf_ring*>(ring_memory);
  void* buffer_memory = nullptr;
  if (posix_memalign(&buffer_memory, alignment, static_cast<size_t>(kCount) * kSize) != 0) return -ENOMEM;
  buffers_ = static_cast<char*>(buffer_memory);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(ring_);
  reg.ring_entries = kCount;
  reg.bgid = kGroup;
  if (const int result = io_uring_register_buf_ring(ring, &reg, 0); result < 0) return result;
  registered_ = true;
  io_uring_buf_ring_init(ring_);
  const int mask = io_uring_buf_ring_mask(kCount);
  for (uint32_t bid = 0; bid < kCount; ++bid) {
    io_uring_buf_ring_add(ring_, buffers_ + static_cast<size_t>(bid) * kSize, kSize, static_cast<uint16_t>(bid), mask,
                          static_cast<int>(bid));
  }
  io_uring_buf_ring_advance(ring_, kCount);
  return 0;
}

void UringBufferRing::Unregister(io_uring* ring) {
  if (!registered_) return;
  io_uring_unregister_buf_ring(ring, kGroup);
  registered_ = false;
}

void UringBufferRing::Return(uint16_t bid) {
  io_uring_buf_ring_add(ring_, buffers_ + static_cast<size_t>(bid) * kSize, kSize, bid, io_uring_buf_ring_mask(kCount),
                        0);
  io_uring_buf_ring_advance(ring_, 1);
  --held_;
}

}  // namespace gateway
