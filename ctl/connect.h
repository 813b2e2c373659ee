// How gatewayctl reaches a control plane: plaintext by default, TLS (and
// mTLS) like the server's --control_tls_* flags, one channel per target and
// a deadline per call.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ctl/targets.h"
#include "gateway/v1/control.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace gateway::ctl {

// PEM file paths; all empty means plaintext.
struct TlsFiles {
  std::string ca;           // verifies the server; empty with TLS on: the system's roots
  std::string cert;         // client certificate chain (mTLS), with key
  std::string key;          // its private key
  std::string server_name;  // the name the server certificate must carry, instead of the target's host
};

// Dials targets with one set of credentials and options. Immutable after
// Create, so thread-safe.
class Dialer {
 public:
  // Reads the PEM files. INVALID_ARGUMENT naming the flag for an unreadable
  // file or one without the PEM block expected (a certificate, a private
  // key), a cert without key (or the reverse), or a server name without TLS.
  static absl::StatusOr<Dialer> Create(const TlsFiles& tls, absl::Duration timeout);

  // A stub on a new channel to `target` (connecting lazily, on the first call).
  std::unique_ptr<v1::GatewayControl::Stub> Stub(const Target& target) const;
  // Sets `context`'s deadline to now + the per-call timeout.
  void SetDeadline(grpc::ClientContext* context) const;
  bool tls() const { return tls_; }

 private:
  Dialer() = default;
  std::shared_ptr<grpc::ChannelCredentials> credentials_;
  std::string server_name_;
  absl::Duration timeout_;
  bool tls_ = false;
};

}  // namespace gateway::ctl
