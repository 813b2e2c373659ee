// Channels and credentials for gatewayctl.
#include "ctl/connect.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace gateway::ctl {
namespace {

// The file's text if it holds a PEM block ending in `kind` ("CERTIFICATE",
// "PRIVATE KEY"), so a swapped file is named here rather than failing later
// as an unexplained handshake error.
absl::StatusOr<std::string> ReadPem(const std::string& path, const char* flag, const char* kind) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read ", path));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find(absl::StrCat(kind, "-----")) == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", path, " holds no PEM ", absl::AsciiStrToLower(kind)));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<Dialer> Dialer::Create(const TlsFiles& tls, absl::Duration timeout) {
  Dialer dialer;
  dialer.timeout_ = timeout;
  dialer.tls_ = !tls.ca.empty() || !tls.cert.empty() || !tls.key.empty();
  if (!dialer.tls_) {
    if (!tls.server_name.empty()) return absl::InvalidArgumentError("--tls_server_name needs TLS (--tls_ca)");
    dialer.credentials_ = grpc::InsecureChannelCredentials();
    return dialer;
  }
  if (tls.cert.empty() != tls.key.empty()) return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  grpc::SslCredentialsOptions options;
  if (!tls.ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem(tls.ca, "--tls_ca", "CERTIFICATE");
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *std::move(ca);
  }
  if (!tls.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem(tls.cert, "--tls_cert", "CERTIFICATE");
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem(tls.key, "--tls_key", "PRIVATE KEY");
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *std::move(cert);
    options.pem_private_key = *std::move(key);
  }
  dialer.credentials_ = grpc::SslCredentials(options);
  dialer.server_name_ = tls.server_name;
  return dialer;
}

std::unique_ptr<v1::GatewayControl::Stub> Dialer::Stub(const Target& target) const {
  grpc::ChannelArguments args;
  if (!server_name_.empty()) args.SetSslTargetNameOverride(server_name_);
  return v1::GatewayControl::NewStub(grpc::CreateCustomChannel(target.address, credentials_, args));
}

void Dialer::SetDeadline(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
}

}  // namespace gateway::ctl
