#include "control/control_service.h"

#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "control/pending_call.h"
#include "control/proto_convert.h"

namespace gateway::control {
namespace {

absl::Status CheckFd(int fd) {
  if (fd < 0) return absl::InvalidArgumentError(absl::StrCat("fd must be >= 0, got ", fd));
  return absl::OkStatus();
}

// Adds one reactor's counters into `out` (so totals are sums over reactors).
void AddCounters(const ReactorStats& s, v1::Counters* out) {
  out->set_active_connections(out->active_connections() + s.active.Get());
  v1::StateCounts* by_state = out->mutable_by_state();
  using S = ConnectionState;
  auto state = [&s](S st) { return s.by_state[static_cast<int>(st)].Get(); };
  by_state->set_accept(by_state->accept() + state(S::kAccept));
  by_state->set_read(by_state->read() + state(S::kRead));
  by_state->set_process(by_state->process() + state(S::kProcess));
  by_state->set_write(by_state->write() + state(S::kWrite));
  by_state->set_closing(by_state->closing() + state(S::kClosing));
  out->set_accepted(out->accepted() + s.accepted.Get());
  out->set_rejected(out->rejected() + s.rejected.Get());
  using R = CloseReason;
  auto closed = [&s](R r) { return s.closed[static_cast<int>(r)].Get(); };
  v1::CloseCounts* c = out->mutable_closed();
  c->set_peer_closed(c->peer_closed() + closed(R::kPeerClosed));
  c->set_protocol_error(c->protocol_error() + closed(R::kProtocolError));
  c->set_idle_timeout(c->idle_timeout() + closed(R::kIdleTimeout));
  c->set_control_plane(c->control_plane() + closed(R::kControlPlane));
  c->set_reset(c->reset() + closed(R::kReset));
  c->set_max_connections(c->max_connections() + closed(R::kMaxConnections));
  c->set_shutdown(c->shutdown() + closed(R::kShutdown));
  c->set_error(c->error() + closed(R::kError));
  c->set_frame_timeout(c->frame_timeout() + closed(R::kFrameTimeout));
  c->set_select_fd_limit(c->select_fd_limit() + closed(R::kSelectFdLimit));
  c->set_upstream_error(c->upstream_error() + closed(R::kUpstreamError));
  c->set_max_connection_age(c->max_connection_age() + closed(R::kMaxConnectionAge));
  c->set_drained(c->drained() + closed(R::kDrained));
  uint64_t closed_total = 0;
  for (const auto& counter : s.closed) closed_total += counter.Get();
  out->set_closed_total(out->closed_total() + closed_total);
  out->set_frames_in(out->frames_in() + s.frames_in.Get());
  out->set_frames_out(out->frames_out() + s.frames_out.Get());
  out->set_bytes_in(out->bytes_in() + s.bytes_in.Get());
  out->set_bytes_out(out->bytes_out() + s.bytes_out.Get());
  out->set_protocol_errors(out->protocol_errors() + s.protocol_errors.Get());
  out->set_accept_errors(out->accept_errors() + s.accept_errors.Get());
  out->set_wakeups(out->wakeups() + s.wakeups.Get());
  out->set_queued_bytes(out->queued_bytes() + s.queued_bytes.Get());
  out->set_accept_backoffs(out->accept_backoffs() + s.accept_backoffs.Get());
}

}  // namespace

int64_t UnfinishedUnaryCalls() { return PendingCall::Unfinished(); }

grpc::ServerUnaryReactor* GatewayControlService::GetTriggerMode(grpc::CallbackServerContext* context,
                                                                const v1::GetTriggerModeRequest* /*request*/,
                                                                v1::TriggerModeStatus* response) {
  response->set_mode(ToProto(gateway_->trigger_mode()));
  response->set_switches(gateway_->trigger_mode_switches());
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayControlService::SetTriggerMode(grpc::CallbackServerContext* context,
                                                                const v1::SetTriggerModeRequest* request,
                                                                v1::TriggerModeStatus* response) {
  absl::StatusOr<TriggerMode> mode = FromProto(request->mode());
  if (!mode.ok()) return FinishWith(context, mode.status());
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  // The gateway, not this service: it outlives the server, a late reply may not.
  Gateway* gateway = gateway_;
  gateway_->SetTriggerMode(*mode, [call, gateway, response](absl::Status status) {
    call->Answer(status, [&] {
      response->set_mode(ToProto(gateway->trigger_mode()));
      response->set_switches(gateway->trigger_mode_switches());
    });
  });
  return call.get();
}

grpc::ServerUnaryReactor* GatewayControlService::GetIoModel(grpc::CallbackServerContext* context,
                                                            const v1::GetIoModelRequest* /*request*/,
                                                            v1::IoModelStatus* response) {
  FillIoModelStatus(*gateway_, response);
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayControlService::SetIoModel(grpc::CallbackServerContext* context,
                                                            const v1::SetIoModelRequest* request,
                                                            v1::IoModelStatus* response) {
  absl::StatusOr<IoModel> model = FromProto(request->model());
  if (!model.ok()) return FinishWith(context, model.status());
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  // The gateway and the registry, not this service: a late reply may outlive it.
  Gateway* gateway = gateway_;
  gateway_->SetIoModel(*model, [call, gateway, watches = watches_, model = *model, response](absl::Status status) {
    // Announced even when the caller has gone: the switch happened.
    if (status.ok()) watches->IoModelSet(model, gateway->last_io_model_switch_duration());
    call->Answer(status, [&] { FillIoModelStatus(*gateway, response); });
  });
  return call.get();
}

void GatewayControlService::FillIoModelStatus(const Gateway& gateway, v1::IoModelStatus* response) {
  const IoModel current = gateway.io_model();
  response->set_model(ToProto(current));
  response->set_switches(gateway.io_model_switches());
  ToProto(gateway.last_io_model_switch_duration(), response->mutable_last_switch_duration());
  if (!IsLiveSwitchable(current)) return;  // a start-time-only model stays until restart
  for (int i = 0; i < kNumIoModels; ++i) {
    const auto candidate = static_cast<IoModel>(i);
    if (IsLiveSwitchable(candidate) && Gateway::ProbeIoModel(candidate).ok()) {
      response->add_available(ToProto(candidate));
    }
  }
}

grpc::ServerUnaryReactor* GatewayControlService::ListConnections(grpc::CallbackServerContext* context,
                                                                 const v1::ListConnectionsRequest* request,
                                                                 v1::ListConnectionsResponse* response) {
  absl::StatusOr<ListQuery> query = ListQueryFromRequest(*request);
  if (!query.ok()) return FinishWith(context, query.status());
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->ListConnections(*query, [call, response, state = query->state](absl::StatusOr<ConnectionPage> page) {
    call->Answer(page.status(), [&] {
      response->mutable_connections()->Reserve(static_cast<int>(page->connections.size()));
      for (const ConnectionInfo& info : page->connections) ToProto(info, response->add_connections());
      if (page->has_more()) response->set_next_page_token(EncodePageToken({state, page->next_after_fd}));
      response->set_total_size(static_cast<int64_t>(page->total_matching));
    });
  });
  return call.get();
}

absl::StatusOr<ListQuery> GatewayControlService::ListQueryFromRequest(const v1::ListConnectionsRequest& request) {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size must be >= 0, got ", request.page_size()));
  }
  const int page_size = request.page_size() == 0 ? kDefaultPageSize : std::min(request.page_size(), kMaxPageSize);
  absl::StatusOr<std::optional<ConnectionState>> state = StateFilterFromProto(request.state());
  if (!state.ok()) return state.status();
  ListQuery query;
  query.state = *state;
  if (!request.page_token().empty()) {
    absl::StatusOr<PageCursor> cursor = DecodePageToken(request.page_token());
    if (!cursor.ok()) return cursor.status();
    if (cursor->state != query.state) {
      return absl::InvalidArgumentError("page_token belongs to a listing with another state filter");
    }
    query.after_fd = cursor->after_fd;
  }
  // The gateway tells whether another page follows (ConnectionPage::next_after_fd).
  query.limit = static_cast<size_t>(page_size);
  return query;
}

grpc::ServerUnaryReactor* GatewayControlService::GetConnection(grpc::CallbackServerContext* context,
                                                               const v1::GetConnectionRequest* request,
                                                               v1::Connection* response) {
  if (absl::Status status = CheckFd(request->fd()); !status.ok()) return FinishWith(context, status);
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->GetConnection(request->fd(), request->id(), [call, response](absl::StatusOr<ConnectionInfo> info) {
    call->Answer(info.status(), [&] { ToProto(*info, response); });
  });
  return call.get();
}

grpc::ServerUnaryReactor* GatewayControlService::CloseConnection(grpc::CallbackServerContext* context,
                                                                 const v1::CloseConnectionRequest* request,
                                                                 v1::CloseConnectionResponse* /*response*/) {
  if (absl::Status status = CheckFd(request->fd()); !status.ok()) return FinishWith(context, status);
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->CloseConnection(request->fd(), request->id(), request->force() ? CloseMode::kForce : CloseMode::kFlush,
                            [call](absl::Status status) { call->Answer(status, [] {}); });
  return call.get();
}

grpc::ServerWriteReactor<v1::ConnectionEvent>* GatewayControlService::WatchConnections(
    grpc::CallbackServerContext* /*context*/, const v1::WatchConnectionsRequest* request) {
  return new WatchStream(gateway_, &pump_, watches_, *request, watch_limits_);
}

grpc::ServerUnaryReactor* GatewayControlService::GetStats(grpc::CallbackServerContext* context,
                                                          const v1::GetStatsRequest* /*request*/, v1::Stats* response) {
  FillStats(response);
  return FinishWith(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* GatewayControlService::DrainConnections(grpc::CallbackServerContext* context,
                                                                  const v1::DrainConnectionsRequest* request,
                                                                  v1::DrainConnectionsResponse* response) {
  DrainQuery query;
  switch (request->amount_case()) {
    case v1::DrainConnectionsRequest::kFraction: query.fraction = request->fraction(); break;
    case v1::DrainConnectionsRequest::kCount: query.count = request->count(); break;
    case v1::DrainConnectionsRequest::AMOUNT_NOT_SET:
      return FinishWith(context, absl::InvalidArgumentError("set fraction or count"));
  }
  auto duration = [](const google::protobuf::Duration& d) {
    return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
  };
  query.min_age = duration(request->min_age());
  query.spread = duration(request->spread());
  if (query.spread > absl::Hours(24)) return FinishWith(context, absl::InvalidArgumentError("spread must be <= 24h"));
  std::shared_ptr<PendingCall> call = PendingCall::Create(context);
  gateway_->DrainConnections(query, [call, response](absl::StatusOr<DrainResult> result) {
    call->Answer(result.status(), [&] {
      response->set_selected(static_cast<uint32_t>(result->selected));
      response->set_matching(static_cast<uint32_t>(result->matching));
    });
  });
  return call.get();
}

void GatewayControlService::FillStats(v1::Stats* response) {
  const absl::Time now = absl::Now();
  response->set_active_connections(gateway_->active_connections());
  response->set_trigger_mode(ToProto(gateway_->trigger_mode()));
  response->set_trigger_mode_switches(gateway_->trigger_mode_switches());
  ToProto(gateway_->started_at(), response->mutable_started_at());
  ToProto(now - gateway_->started_at(), response->mutable_uptime());
  response->set_data_port(gateway_->port());
  response->set_io_model(ToProto(gateway_->io_model()));
  response->set_io_model_switches(gateway_->io_model_switches());
  response->set_draining(gateway_->draining());
  response->set_instance(gateway_->options().instance);
  v1::Counters* totals = response->mutable_totals();
  for (int i = 0; i < gateway_->num_reactors(); ++i) {
    const ReactorStats& stats = gateway_->reactor_stats(i);
    v1::ReactorStats* reactor = response->add_reactors();
    reactor->set_index(i);
    AddCounters(stats, reactor->mutable_counters());
    AddCounters(stats, totals);
  }
}

}  // namespace gateway::control
