// The control server's set-up: TLS (with and without client-certificate
// verification, against a throwaway CA made with openssl at test time:
// tests/support/test_pki.h) and the failures an operator must see clearly:
// unreadable or mismatched TLS files, a busy port.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/control/control_fixture.h"
#include "tests/support/test_pki.h"

namespace gateway::control::testing {
namespace {

class ControlServerTest : public ControlFixture {
 protected:
  void SetUp() override { ASSERT_TRUE(Pki::Get().ok()) << "openssl failed (is it installed?)"; }

  // Starts the gateway and a TLS control server; the fixture's stub is unused.
  void StartTls(bool verify_clients) {
    ControlServerOptions options;
    options.tls_cert_file = Pki::Get().path("server.pem");
    options.tls_key_file = Pki::Get().path("server.key");
    if (verify_clients) options.tls_client_ca_file = Pki::Get().path("ca.pem");
    Start(GatewayOptions(), options);
  }

  // GetTriggerMode over a channel with `credentials`.
  grpc::Status Call(std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()), credentials);
    auto stub = v1::GatewayControl::NewStub(channel);
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(10));
    v1::TriggerModeStatus status;
    return stub->GetTriggerMode(&context, v1::GetTriggerModeRequest(), &status);
  }

  static std::shared_ptr<grpc::ChannelCredentials> Tls(bool with_client_cert) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Pki::Get().pem("ca.pem");
    if (with_client_cert) {
      options.pem_private_key = Pki::Get().pem("client.key");
      options.pem_cert_chain = Pki::Get().pem("client.pem");
    }
    return grpc::SslCredentials(options);
  }
};

TEST_F(ControlServerTest, ServesTlsOnly) {
  StartTls(/*verify_clients=*/false);
  grpc::Status status = Call(Tls(/*with_client_cert=*/false));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Call(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ControlServerTest, VerifiesClientCertificates) {
  StartTls(/*verify_clients=*/true);
  grpc::Status status = Call(Tls(/*with_client_cert=*/true));
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(Call(Tls(/*with_client_cert=*/false)).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Call(grpc::InsecureChannelCredentials()).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(ControlServerTest, RefusesUnusableTlsFiles) {
  Start();  // a gateway (and a plaintext server, unused here)
  struct Case {
    std::string cert, key, ca;
    absl::StatusCode code;
    std::string message;
  };
  const Pki& pki = Pki::Get();
  const Case cases[] = {
      {"/nonexistent.pem", pki.path("server.key"), "", absl::StatusCode::kInvalidArgument,
       "--control_tls_cert: cannot read /nonexistent.pem"},
      {pki.path("server.key"), pki.path("server.key"), "", absl::StatusCode::kInvalidArgument,
       absl::StrCat("--control_tls_cert: ", pki.path("server.key"), " holds no PEM certificate")},
      {pki.path("server.pem"), pki.path("server.pem"), "", absl::StatusCode::kInvalidArgument,
       absl::StrCat("--control_tls_key: ", pki.path("server.pem"), " holds no PEM private key")},
      {pki.path("server.pem"), "", "", absl::StatusCode::kInvalidArgument,
       "--control_tls_cert and --control_tls_key go together"},
      {"", "", pki.path("ca.pem"), absl::StatusCode::kInvalidArgument,
       "--control_tls_client_ca needs --control_tls_cert and --control_tls_key"},
      // A key that does not belong to the certificate.
      {pki.path("server.pem"), pki.path("other.key"), "", absl::StatusCode::kUnavailable,
       "cannot serve the control plane on 127.0.0.1:0: unusable TLS certificate or key (or they do not match)"},
  };
  for (const Case& c : cases) {
    ControlServerOptions options;
    options.listen_address = "127.0.0.1:0";
    options.tls_cert_file = c.cert;
    options.tls_key_file = c.key;
    options.tls_client_ca_file = c.ca;
    absl::StatusOr<std::unique_ptr<ControlServer>> server = StartControlServer(gw_.get(), options);
    ASSERT_FALSE(server.ok()) << c.cert << " " << c.key;
    EXPECT_EQ(server.status().code(), c.code);
    EXPECT_EQ(server.status().message(), c.message);
  }
}

TEST_F(ControlServerTest, RefusesABusyPortAndBadAddresses) {
  Start();
  ControlServerOptions options;
  options.listen_address = absl::StrCat("127.0.0.1:", server_->port());
  absl::StatusOr<std::unique_ptr<ControlServer>> second = StartControlServer(gw_.get(), options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(second.status().message(),
            absl::StrCat("cannot serve the control plane on 127.0.0.1:", server_->port(), ": Address already in use"));
  for (const char* address : {"", "127.0.0.1"}) {
    options.listen_address = address;
    EXPECT_EQ(StartControlServer(gw_.get(), options).status().code(), absl::StatusCode::kInvalidArgument) << address;
  }
  // The first server is unaffected.
  grpc::ClientContext context;
  SetDeadline(&context);
  v1::TriggerModeStatus status;
  EXPECT_TRUE(stub_->GetTriggerMode(&context, v1::GetTriggerModeRequest(), &status).ok());
}

}  // namespace
}  // namespace gateway::control::testing
