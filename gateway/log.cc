#include "gateway/log.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace gateway {

void LogError(absl::string_view message) {
  const std::string line = absl::StrCat("gateway: ", message, "\n");
  std::fputs(line.c_str(), stderr);
}

void DieErrno(absl::string_view what) { Die(absl::StrCat(what, ": ", std::strerror(errno))); }

void Die(absl::string_view message) {
  LogError(message);
  std::abort();
}

}  // namespace gateway
