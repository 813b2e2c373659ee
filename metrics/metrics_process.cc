// Reads /proc/self/stat, /proc/stat and /proc/self/fd with plain syscalls:
// this runs on scrape threads and must not throw or allocate much.
#include "metrics/metrics_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace gateway {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Returns the whole of a small /proc file, or nullopt.
std::optional<std::string> ReadProcFile(const char* path) {
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char chunk[4096];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) > 0) text.append(chunk, static_cast<size_t>(n));
  close(fd);
  if (n < 0) return std::nullopt;
  return text;
}

// The fields of /proc/self/stat after the command name; fields()[0] is
// field 3 ("state") of proc(5).
struct ProcStat {
  std::vector<absl::string_view> fields;
  std::string text;  // owns what `fields` points into

  // Returns field `number` (1-based, as numbered in proc(5)) or 0.
  double Field(size_t number) const {
    double value = 0;
    if (number < 3 || number - 3 >= fields.size() || !absl::SimpleAtod(fields[number - 3], &value)) return 0;
    return value;
  }
};

std::optional<ProcStat> ReadProcStat() {
  ProcStat stat;
  std::optional<std::string> text = ReadProcFile("/proc/self/stat");
  if (!text) return std::nullopt;
  stat.text = std::move(*text);
  // The command name is in parentheses and may itself hold spaces or ')'.
  const size_t close = stat.text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  stat.fields = absl::StrSplit(absl::string_view(stat.text).substr(close + 1), ' ', absl::SkipWhitespace());
  if (stat.fields.size() < 22) return std::nullopt;
  return stat;
}

std::optional<double> BootTimeSeconds() {
  std::optional<std::string> text = ReadProcFile("/proc/stat");
  if (!text) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    double value = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &value)) return value;
  }
  return std::nullopt;
}

std::optional<double> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  double count = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the directory's own fd
}

MetricFamily Single(const char* name, const char* help, MetricType type, double value) {
  MetricFamily family{name, help, type, {}};
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

ProcessCollector::ProcessCollector() {
  const std::optional<ProcStat> stat = ReadProcStat();
  const std::optional<double> boot = BootTimeSeconds();
  if (stat && boot) start_time_seconds_ = *boot + stat->Field(22) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::vector<MetricFamily> ProcessCollector::Collect() const {
  std::vector<MetricFamily> out;
  if (const std::optional<ProcStat> stat = ReadProcStat()) {
    const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    out.push_back(Single("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                         MetricType::Counter, (stat->Field(14) + stat->Field(15)) / ticks));
    out.push_back(
        Single("process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge, stat->Field(23)));
    out.push_back(Single("process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
                         stat->Field(24) * page));
  }
  if (const std::optional<double> fds = OpenFds()) {
    out.push_back(Single("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, *fds));
  }
  rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    const double max = limit.rlim_cur == RLIM_INFINITY ? -1 : static_cast<double>(limit.rlim_cur);
    out.push_back(Single("process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge, max));
  }
  if (start_time_seconds_ > 0) {
    out.push_back(Single("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                         MetricType::Gauge, start_time_seconds_));
  }
  return out;
}

}  // namespace gateway
