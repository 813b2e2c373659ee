// The Gateway facade's upstream-mode calls: backends added, drained,
// removed and re-weighted on every reactor, and their pictures.
#include "gateway/gateway.h"
#include "gateway/sync_wait.h"

namespace gateway {
namespace {

absl::Status NotUpstream() {
  return absl::FailedPreconditionError("the gateway is not in upstream mode (start it with --upstream)");
}

}  // namespace

absl::StatusOr<std::vector<BackendInfo>> Gateway::ListBackends() const {
  if (!upstream_enabled()) return NotUpstream();
  return absl::UnimplementedError("upstream mode is being built");
}

absl::StatusOr<BackendInfo> Gateway::GetBackend(absl::string_view) const {
  if (!upstream_enabled()) return NotUpstream();
  return absl::UnimplementedError("upstream mode is being built");
}

void Gateway::AddBackend(BackendSpec, Done<BackendInfo> done) {
  std::move(done)(upstream_enabled() ? absl::UnimplementedError("upstream mode is being built") : NotUpstream());
}
void Gateway::DrainBackend(std::string, absl::Duration, Done<BackendInfo> done) {
  std::move(done)(upstream_enabled() ? absl::UnimplementedError("upstream mode is being built") : NotUpstream());
}
void Gateway::UndrainBackend(std::string, Done<BackendInfo> done) {
  std::move(done)(upstream_enabled() ? absl::UnimplementedError("upstream mode is being built") : NotUpstream());
}
void Gateway::RemoveBackend(std::string, absl::Duration, Done<BackendInfo> done) {
  std::move(done)(upstream_enabled() ? absl::UnimplementedError("upstream mode is being built") : NotUpstream());
}
void Gateway::SetBackendWeight(std::string, uint32_t, Done<BackendInfo> done) {
  std::move(done)(upstream_enabled() ? absl::UnimplementedError("upstream mode is being built") : NotUpstream());
}

absl::StatusOr<BackendInfo> Gateway::AddBackend(BackendSpec spec) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { AddBackend(std::move(spec), std::move(done)); });
}
absl::StatusOr<BackendInfo> Gateway::DrainBackend(std::string address, absl::Duration timeout) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { DrainBackend(std::move(address), timeout, std::move(done)); },
      timeout + kReactorReplyTimeout);
}
absl::StatusOr<BackendInfo> Gateway::UndrainBackend(std::string address) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { UndrainBackend(std::move(address), std::move(done)); });
}
absl::StatusOr<BackendInfo> Gateway::RemoveBackend(std::string address, absl::Duration timeout) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { RemoveBackend(std::move(address), timeout, std::move(done)); },
      timeout + kReactorReplyTimeout);
}
absl::StatusOr<BackendInfo> Gateway::SetBackendWeight(std::string address, uint32_t weight) {
  return WaitFor<absl::StatusOr<BackendInfo>>(
      [&](Done<BackendInfo> done) { SetBackendWeight(std::move(address), weight, std::move(done)); });
}

absl::Status Gateway::AddBackendObserver(std::shared_ptr<BackendObserver>) {
  if (!upstream_enabled()) return NotUpstream();
  return absl::UnimplementedError("upstream mode is being built");
}
void Gateway::RemoveBackendObserver(const BackendObserver*) {}

}  // namespace gateway
