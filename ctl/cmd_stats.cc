// stats, get/set-trigger-mode and get/set-io-model: one unary call per
// gateway, one row each.
#include "ctl/commands.h"
#include "ctl/fanout.h"
#include "ctl/format_stats.h"
#include "ctl/names.h"

namespace gateway::ctl {

int RunStats(const Invocation& inv) {
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::GetStats, v1::GetStatsRequest());
  return Emit<v1::Stats>(inv.format, outcomes, StatsTable, *inv.out, *inv.err);
}

int RunGetTriggerMode(const Invocation& inv) {
  auto outcomes =
      FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::GetTriggerMode, v1::GetTriggerModeRequest());
  return Emit<v1::TriggerModeStatus>(inv.format, outcomes, TriggerModeTable, *inv.out, *inv.err);
}

int RunSetTriggerMode(const Invocation& inv) {
  absl::StatusOr<v1::TriggerMode> mode = ParseEnumWord<v1::TriggerMode>(inv.args[0], "the trigger mode");
  if (!mode.ok()) return UsageError(*inv.err, mode.status().message());
  v1::SetTriggerModeRequest request;
  request.set_mode(*mode);
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::SetTriggerMode, request);
  return Emit<v1::TriggerModeStatus>(inv.format, outcomes, TriggerModeTable, *inv.out, *inv.err);
}

int RunGetIoModel(const Invocation& inv) {
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::GetIoModel, v1::GetIoModelRequest());
  return Emit<v1::IoModelStatus>(inv.format, outcomes, IoModelTable, *inv.out, *inv.err);
}

int RunSetIoModel(const Invocation& inv) {
  absl::StatusOr<v1::IoModel> model = ParseEnumWord<v1::IoModel>(inv.args[0], "the IO model");
  if (!model.ok()) return UsageError(*inv.err, model.status().message());
  v1::SetIoModelRequest request;
  request.set_model(*model);
  auto outcomes = FanOutUnary(*inv.dialer, inv.targets, &v1::GatewayControl::Stub::SetIoModel, request);
  return Emit<v1::IoModelStatus>(inv.format, outcomes, IoModelTable, *inv.out, *inv.err);
}

}  // namespace gateway::ctl
