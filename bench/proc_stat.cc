#include "bench/proc_stat.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace bench {
namespace {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

}  // namespace

absl::StatusOr<double> ProcessCpuSeconds(pid_t pid) {
  absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!text.ok()) return text.status();
  // The command name (field 2) may hold spaces and parentheses: fields after
  // the last ')' start at field 3 (state); utime and stime are fields 14, 15.
  const size_t paren = text->rfind(')');
  if (paren == std::string::npos) return absl::DataLossError("malformed /proc/PID/stat");
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*text).substr(paren + 1), ' ', absl::SkipEmpty());
  uint64_t utime = 0, stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) || !absl::SimpleAtoi(fields[12], &stime)) {
    return absl::DataLossError("malformed /proc/PID/stat");
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

absl::StatusOr<int64_t> ProcessRssBytes(pid_t pid) {
  absl::StatusOr<std::string> text = ReadSmallFile(absl::StrCat("/proc/", pid, "/statm"));
  if (!text.ok()) return text.status();
  std::vector<absl::string_view> fields = absl::StrSplit(*text, ' ', absl::SkipEmpty());
  int64_t pages = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &pages)) return absl::DataLossError("malformed statm");
  return pages * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace bench
