// A real in-process gateway (on 127.0.0.1:0) with a real control server (on
// 127.0.0.1:0) and a gRPC client stub talking to it over loopback, shared by
// the control-plane tests.
#pragma once

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "control/control_server.h"
#include "gateway/gateway.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/support/test_client.h"

namespace gateway::control::testing {

// The shared test helpers (test client, frames, waits) by their
// plain names in every control-plane test.
using namespace ::gateway::testing;  // NOLINT(build/namespaces): test-only namespace

// Debian's Abseil is built without NDEBUG, so absl::Mutex (which gRPC uses
// inside) keeps a deadlock-detection graph whose bookkeeping, being
// uninstrumented, TSan reports as races between gRPC's own threads. Turn the
// detection off before any gRPC thread starts.
inline const bool kMutexDeadlockDetectionOff = [] {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  return true;
}();

// Every RPC a test makes is bounded by this.
inline constexpr absl::Duration kRpcTimeout = absl::Seconds(20);

inline void SetDeadline(grpc::ClientContext* context, absl::Duration timeout = kRpcTimeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

class ControlFixture : public ::testing::Test {
 protected:
  // Starts the gateway and the control server; call at most once per test.
  void Start(GatewayOptions gateway_options = {}, ControlServerOptions control_options = {},
             grpc::ChannelArguments channel_args = {}) {
    absl::StatusOr<std::unique_ptr<Gateway>> gw = gateway::testing::StartTestGateway(gateway_options);
    ASSERT_TRUE(gw.ok()) << gw.status();
    gw_ = *std::move(gw);
    control_options.listen_address = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<ControlServer>> server = StartControlServer(gw_.get(), control_options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                         grpc::InsecureChannelCredentials(), channel_args);
    stub_ = v1::GatewayControl::NewStub(channel_);
  }

  void TearDown() override {
    stub_.reset();
    channel_.reset();
    if (server_) server_->Shutdown(absl::Seconds(5));
    if (gw_) gw_->Shutdown(absl::Seconds(5));
  }

  gateway::testing::TestClient Connect() {
    absl::StatusOr<gateway::testing::TestClient> client = gateway::testing::TestClient::Connect(gw_->port());
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : gateway::testing::TestClient();
  }

  // The server-side fd of `client`'s connection, found with ListConnections.
  int FdOf(const gateway::testing::TestClient& client) {
    absl::StatusOr<ConnectionInfo> info = gateway::testing::FindConnection(*gw_, client);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->fd : -1;
  }

  grpc::Status GetConnection(int fd, v1::Connection* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::GetConnectionRequest request;
    request.set_fd(fd);
    return stub_->GetConnection(&context, request, out);
  }

  grpc::Status SetMode(v1::TriggerMode mode, v1::TriggerModeStatus* out = nullptr) {
    grpc::ClientContext context;
    SetDeadline(&context);
    v1::SetTriggerModeRequest request;
    request.set_mode(mode);
    v1::TriggerModeStatus ignored;
    return stub_->SetTriggerMode(&context, request, out != nullptr ? out : &ignored);
  }

  grpc::Status List(const v1::ListConnectionsRequest& request, v1::ListConnectionsResponse* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub_->ListConnections(&context, request, out);
  }

  grpc::Status Stats(v1::Stats* out) {
    grpc::ClientContext context;
    SetDeadline(&context);
    return stub_->GetStats(&context, v1::GetStatsRequest(), out);
  }

  std::unique_ptr<Gateway> gw_;
  std::unique_ptr<ControlServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::GatewayControl::Stub> stub_;
};

}  // namespace gateway::control::testing
