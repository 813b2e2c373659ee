// A throwaway PKI for TLS tests, made with openssl once per test process in
// a temporary directory removed at exit: ca.pem/ca.key, a server certificate
// for 127.0.0.1 and localhost (server.pem/server.key), a client certificate
// signed by the CA (client.pem/client.key), and an unrelated self-signed
// pair (other.pem/other.key).
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"

namespace gateway::testing {

// Immutable once made; thread-safe.
class Pki {
 public:
  static const Pki& Get() {
    static const Pki* pki = new Pki();
    return *pki;
  }
  // False if openssl failed (is it installed?).
  bool ok() const { return ok_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string pem(const std::string& name) const {
    std::ifstream in(path(name));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  Pki() {
    char templ[] = "/tmp/control_tls_XXXXXX";
    if (mkdtemp(templ) == nullptr) return;
    dir_ = templ;
    static std::string to_remove;
    to_remove = dir_;
    std::atexit([] { (void)std::system(absl::StrCat("rm -rf ", to_remove).c_str()); });
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script = absl::StrCat(
        "set -e; cd ", dir_, "; exec 2>openssl.log;", "openssl req -x509 ", ec,
        " -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca;", "openssl req ", ec,
        " -keyout server.key -out server.csr -subj /CN=localhost;",
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext;",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 "
        "-extfile server.ext;",
        "openssl req ", ec, " -keyout client.key -out client.csr -subj /CN=client;",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2;",
        "openssl req -x509 ", ec, " -keyout other.key -out other.pem -days 2 -subj /CN=other;");
    ok_ = std::system(absl::StrCat("sh -c \"", script, "\"").c_str()) == 0;
  }
  std::string dir_;
  bool ok_ = false;
};

}  // namespace gateway::testing
