#include "common/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "common/metric_families.h"
#include "common/version.h"

namespace kaito {
namespace {

using prometheus::MetricFamily;

// Fields 14 (utime), 15 (stime), 22 (starttime) and 23 (vsize) of /proc/self/stat, counted
// from after the command name's closing parenthesis (the name may hold spaces).
struct Stat {
  double utime_ticks = 0, stime_ticks = 0, start_ticks = 0, vsize_bytes = 0;
  bool ok = false;
};

Stat ReadStat() {
  Stat stat;
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return stat;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  // The first field after the name is field 3 (state).
  for (int i = 3; fields >> field; ++i) {
    if (i == 14) stat.utime_ticks = std::stod(field);
    if (i == 15) stat.stime_ticks = std::stod(field);
    if (i == 22) stat.start_ticks = std::stod(field);
    if (i == 23) {
      stat.vsize_bytes = std::stod(field);
      stat.ok = true;
      break;
    }
  }
  return stat;
}

double ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  double size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// The machine's boot time, seconds since the epoch (btime in /proc/stat).
double BootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

double OpenFds() {
  std::error_code error;
  double count = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", error), end; !error && it != end;
       it.increment(error)) {
    ++count;
  }
  return count;
}

}  // namespace

std::vector<MetricFamily> ProcessCollector::Collect() const {
  std::vector<MetricFamily> families;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const Stat stat = ReadStat();
  if (stat.ok && ticks > 0) {
    families.push_back(CounterFamily("process_cpu_seconds_total",
                                     "Total user and system CPU time spent in seconds.",
                                     (stat.utime_ticks + stat.stime_ticks) / ticks));
    families.push_back(GaugeFamily("process_start_time_seconds",
                                   "Start time of the process since unix epoch in seconds.",
                                   {{{}, BootTime() + stat.start_ticks / ticks}}));
    families.push_back(GaugeFamily("process_virtual_memory_bytes",
                                   "Virtual memory size in bytes.", {{{}, stat.vsize_bytes}}));
  }
  families.push_back(GaugeFamily("process_resident_memory_bytes",
                                 "Resident memory size in bytes.", {{{}, ResidentBytes()}}));
  families.push_back(
      GaugeFamily("process_open_fds", "Number of open file descriptors.", {{{}, OpenFds()}}));
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    families.push_back(GaugeFamily("process_max_fds", "Maximum number of open file descriptors.",
                                   {{{}, static_cast<double>(limit.rlim_cur)}}));
  }
  families.push_back(
      GaugeFamily("kaito_build_info",
                  "The version and source revision of this build; the value is always 1.",
                  {{{{"version", Version()}, {"revision", Revision()}}, 1}}));
  return families;
}

}  // namespace kaito
