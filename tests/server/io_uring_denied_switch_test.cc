// io_uring refused for real, live: the gateway binary runs epoll under
// deny_io_uring (a seccomp filter that makes io_uring_setup fail with EPERM);
// SetIoModel(IO_MODEL_IO_URING) over gRPC must be FAILED_PRECONDITION with
// the errno in its message, and leave the gateway as it was: same model, no
// switch counted, connections still served.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/support/status_matchers.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_client.h"

#ifndef GATEWAY_BINARY
#error "GATEWAY_BINARY must name the gateway executable"
#endif
#ifndef DENY_IO_URING_BINARY
#error "DENY_IO_URING_BINARY must name the deny_io_uring launcher"
#endif

namespace gateway::testing {
namespace {

std::chrono::system_clock::time_point RpcDeadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(20);
}

TEST(IoUringDeniedSwitchTest, SetIoModelToIoUringIsFailedPreconditionWithTheErrnoAndChangesNothing) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<Subprocess> gateway,
                       Subprocess::Start({DENY_IO_URING_BINARY, GATEWAY_BINARY, "--listen=127.0.0.1:0", "--reactors=2",
                                          "--control_listen=127.0.0.1:0", "--metrics_listen="}));
  const int data_port = WaitForReadyPort(*gateway, "data_port", Deadline());
  const int control_port = WaitForReadyPort(*gateway, "control_port", Deadline());
  ASSERT_GT(data_port, 0) << gateway->Log();
  ASSERT_GT(control_port, 0) << gateway->Log();

  // A connection open across the refused switch, with a frame answered
  // before and after it.
  ASSERT_OK_AND_ASSIGN(TestClient client, TestClient::Connect(data_port));
  ASSERT_OK_AND_ASSIGN(const std::string before, client.RoundTrip("before"));
  EXPECT_EQ(before, "erofeb");

  std::unique_ptr<v1::GatewayControl::Stub> stub = v1::GatewayControl::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", control_port), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    context.set_deadline(RpcDeadline());
    v1::SetIoModelRequest request;
    request.set_model(v1::IO_MODEL_IO_URING);
    v1::IoModelStatus reply;
    const grpc::Status status = stub->SetIoModel(&context, request, &reply);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "io_uring")) << status.error_message();
    EXPECT_TRUE(absl::StrContains(status.error_message(), "EPERM")) << status.error_message();
  }
  {
    grpc::ClientContext context;
    context.set_deadline(RpcDeadline());
    v1::IoModelStatus model;
    const grpc::Status status = stub->GetIoModel(&context, v1::GetIoModelRequest(), &model);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(model.model(), v1::IO_MODEL_EPOLL);
    EXPECT_EQ(model.switches(), 0u);
    for (int available : model.available()) EXPECT_NE(available, v1::IO_MODEL_IO_URING);
  }

  ASSERT_OK_AND_ASSIGN(const std::string after, client.RoundTrip("after"));
  EXPECT_EQ(after, "retfa");
  ASSERT_OK_AND_ASSIGN(TestClient fresh, TestClient::Connect(data_port));
  ASSERT_OK_AND_ASSIGN(const std::string fresh_reply, fresh.RoundTrip("abc"));
  EXPECT_EQ(fresh_reply, "cba");
  EXPECT_TRUE(gateway->Running()) << gateway->Log();
}

}  // namespace
}  // namespace gateway::testing
