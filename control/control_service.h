// GatewayControlService: the gateway.v1.GatewayControl gRPC service on the
// callback API. No method blocks its gRPC thread: one that needs the
// reactors validates its request, hands it to the gateway's asynchronous
// call (which posts to every reactor and gathers the replies) and returns;
// the last reactor's reply converts and finishes the call on that reactor's
// thread. A call whose deadline passes first (a stalled reactor) ends with
// DEADLINE_EXCEEDED and its late reply is dropped. Methods that only read
// counters (GetStats, GetTriggerMode, GetIoModel, ListBackends, GetBackend)
// answer at once. The backend methods are in control_service_backends.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/time/time.h"
#include "control/watch_stream.h"
#include "gateway/gateway.h"
#include "gateway/v1/control.grpc.pb.h"

namespace gateway::control {

inline constexpr int kDefaultPageSize = 1000;
inline constexpr int kMaxPageSize = 10000;
// DrainBackend/RemoveBackend without a timeout and without a call deadline.
inline constexpr absl::Duration kDefaultBackendTimeout = absl::Seconds(30);
// The most a DrainBackend/RemoveBackend timeout may be.
inline constexpr absl::Duration kMaxBackendTimeout = absl::Hours(1);

// Unary calls waiting for the data plane's reply, over every service in the
// process (for tests).
int64_t UnfinishedUnaryCalls();

// Thread-safe (methods run on gRPC threads, replies on reactor threads). Does
// not own the gateway, which must outlive the server this service is
// registered with.
class GatewayControlService final : public v1::GatewayControl::CallbackService {
 public:
  GatewayControlService(Gateway* gateway, const WatchLimits& watch_limits)
      : gateway_(gateway),
        watch_limits_(watch_limits),
        pump_(watch_limits.events_per_sec),
        watches_(std::make_shared<WatchRegistry>(watch_limits.max_watchers, gateway->io_model())) {}

  // Ends every watch stream (after the events already queued) and refuses new
  // ones. Call before shutting the server down.
  void EndWatches() { watches_->EndAll(); }
  // Stops the thread that feeds watch streams. Call after the server has shut down.
  void StopPump() { pump_.Stop(); }
  // Open, refused and queued figures of the watch streams.
  WatchStats watch_stats() const { return watches_->Stats(); }

  grpc::ServerUnaryReactor* GetTriggerMode(grpc::CallbackServerContext* context,
                                           const v1::GetTriggerModeRequest* request,
                                           v1::TriggerModeStatus* response) override;
  grpc::ServerUnaryReactor* SetTriggerMode(grpc::CallbackServerContext* context,
                                           const v1::SetTriggerModeRequest* request,
                                           v1::TriggerModeStatus* response) override;
  grpc::ServerUnaryReactor* GetIoModel(grpc::CallbackServerContext* context, const v1::GetIoModelRequest* request,
                                       v1::IoModelStatus* response) override;
  grpc::ServerUnaryReactor* SetIoModel(grpc::CallbackServerContext* context, const v1::SetIoModelRequest* request,
                                       v1::IoModelStatus* response) override;
  grpc::ServerUnaryReactor* ListConnections(grpc::CallbackServerContext* context,
                                            const v1::ListConnectionsRequest* request,
                                            v1::ListConnectionsResponse* response) override;
  grpc::ServerUnaryReactor* GetConnection(grpc::CallbackServerContext* context, const v1::GetConnectionRequest* request,
                                          v1::Connection* response) override;
  grpc::ServerUnaryReactor* CloseConnection(grpc::CallbackServerContext* context,
                                            const v1::CloseConnectionRequest* request,
                                            v1::CloseConnectionResponse* response) override;
  grpc::ServerWriteReactor<v1::ConnectionEvent>* WatchConnections(grpc::CallbackServerContext* context,
                                                                  const v1::WatchConnectionsRequest* request) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* context, const v1::GetStatsRequest* request,
                                     v1::Stats* response) override;
  grpc::ServerUnaryReactor* DrainConnections(grpc::CallbackServerContext* context,
                                             const v1::DrainConnectionsRequest* request,
                                             v1::DrainConnectionsResponse* response) override;

  grpc::ServerUnaryReactor* ListBackends(grpc::CallbackServerContext* context, const v1::ListBackendsRequest* request,
                                         v1::ListBackendsResponse* response) override;
  grpc::ServerUnaryReactor* GetBackend(grpc::CallbackServerContext* context, const v1::GetBackendRequest* request,
                                       v1::Backend* response) override;
  grpc::ServerUnaryReactor* AddBackend(grpc::CallbackServerContext* context, const v1::AddBackendRequest* request,
                                       v1::Backend* response) override;
  grpc::ServerUnaryReactor* RemoveBackend(grpc::CallbackServerContext* context, const v1::RemoveBackendRequest* request,
                                          v1::Backend* response) override;
  grpc::ServerUnaryReactor* DrainBackend(grpc::CallbackServerContext* context, const v1::DrainBackendRequest* request,
                                         v1::Backend* response) override;
  grpc::ServerUnaryReactor* UndrainBackend(grpc::CallbackServerContext* context,
                                           const v1::UndrainBackendRequest* request, v1::Backend* response) override;
  grpc::ServerUnaryReactor* SetBackendWeight(grpc::CallbackServerContext* context,
                                             const v1::SetBackendWeightRequest* request,
                                             v1::Backend* response) override;
  grpc::ServerWriteReactor<v1::BackendEvent>* WatchBackends(grpc::CallbackServerContext* context,
                                                            const v1::WatchBackendsRequest* request) override;

 private:
  static absl::StatusOr<ListQuery> ListQueryFromRequest(const v1::ListConnectionsRequest& request);
  void FillStats(v1::Stats* response);
  // The model, switch count, last switch's duration and the models a switch
  // may go to; probes io_uring (a ring set up and closed).
  static void FillIoModelStatus(const Gateway& gateway, v1::IoModelStatus* response);

  Gateway* const gateway_;
  const WatchLimits watch_limits_;
  WatchPump pump_;
  const std::shared_ptr<WatchRegistry> watches_;
};

}  // namespace gateway::control
