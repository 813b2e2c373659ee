// ThreadSanitizer suppressions for the control-plane tests, compiled in only
// under TSan. gRPC, gpr, protobuf and Abseil come from Debian as shared
// libraries built without TSan: their synchronization (absl::Mutex, hand-offs
// between gRPC's threads) is invisible to TSan, which then reports their
// internal accesses as races. Reports with a frame in those libraries are
// suppressed, and interceptors (memcpy, epoll, ...) called from them ignored.
// What TSan still checks here is everything without such a frame: the
// reactors against each other and against the test's client threads, under
// the live LT<->ET switch. (A race between a reactor and a gRPC handler
// thread is suppressed too, as that stack starts in gRPC.) A call's status
// message, written by gRPC's poller thread and read by the caller through
// gRPC's inlined CallOpClientRecvStatus after the completion queue's
// (invisible) hand-off, is the same case; its writer's stack is all
// libstdc++ frames once TSan's history truncates it, so it is named here.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libgrpc.so\n"
         "called_from_lib:libgrpc++.so\n"
         "called_from_lib:libgrpc++_reflection.so\n"
         "called_from_lib:libgpr.so\n"
         "called_from_lib:libprotobuf.so\n"
         "called_from_lib:libabsl_strings.so\n"
         "called_from_lib:libabsl_synchronization.so\n"
         "called_from_lib:libabsl_graphcycles_internal.so\n"
         "race:libgrpc\n"
         "race:libgpr.so\n"
         "race:libprotobuf.so\n"
         "race:libabsl_\n"
         "race:grpc::internal::CallOpClientRecvStatus::FinishOp\n";
}
#endif
