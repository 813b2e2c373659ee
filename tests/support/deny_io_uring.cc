// deny_io_uring: runs a program under a seccomp filter that makes
// io_uring_setup, io_uring_enter and io_uring_register fail with EPERM (as
// Docker's default profile does since moby#46762), every other syscall
// allowed. A real refusal for tests, not a mocked one; no libseccomp.
//   deny_io_uring [--errno=ENOSYS] PROGRAM ARGS...
// --errno=ENOSYS refuses them as Podman's default profile does. The filter is
// inherited by every thread and child of PROGRAM and cannot be removed.
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#if defined(__x86_64__)
#define DENY_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define DENY_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "deny_io_uring knows the syscall numbers of x86_64 and aarch64 only"
#endif

// Older kernel headers lack the numbers (same on every architecture since 5.1).
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#define __NR_io_uring_enter 426
#define __NR_io_uring_register 427
#endif

namespace {

int Usage() {
  std::fprintf(stderr, "usage: deny_io_uring [--errno=EPERM|ENOSYS] PROGRAM ARGS...\n");
  return 2;
}

// Returns 0 on success, else prints why and returns 1.
int InstallFilter(int refusal_errno) {
  const unsigned int deny = SECCOMP_RET_ERRNO | (static_cast<unsigned int>(refusal_errno) & SECCOMP_RET_DATA);
  sock_filter program[] = {
      // Another architecture's syscall numbers mean other syscalls: leave it alone.
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, DENY_AUDIT_ARCH, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, deny),
  };
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(sizeof(program) / sizeof(program[0]));
  fprog.filter = program;
  // Lets an unprivileged process install a filter; it also stops set-uid
  // programs from gaining privileges, which nothing here needs.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    std::fprintf(stderr, "deny_io_uring: prctl(PR_SET_NO_NEW_PRIVS): %s\n", std::strerror(errno));
    return 1;
  }
  // TSYNC: a launcher has one thread, but say so rather than assume it.
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog) != 0) {
    std::fprintf(stderr, "deny_io_uring: seccomp(SECCOMP_SET_MODE_FILTER): %s\n", std::strerror(errno));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int first = 1;
  int refusal_errno = EPERM;
  if (first < argc && std::strncmp(argv[first], "--errno=", 8) == 0) {
    const char* name = argv[first] + 8;
    if (std::strcmp(name, "EPERM") == 0) {
      refusal_errno = EPERM;
    } else if (std::strcmp(name, "ENOSYS") == 0) {
      refusal_errno = ENOSYS;
    } else {
      return Usage();
    }
    ++first;
  }
  if (first >= argc) return Usage();
  if (InstallFilter(refusal_errno) != 0) return 1;
  execvp(argv[first], argv + first);
  std::fprintf(stderr, "deny_io_uring: cannot run %s: %s\n", argv[first], std::strerror(errno));
  return 127;
}
