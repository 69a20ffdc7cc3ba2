// A daemon the benchmarks start beside themselves (kaito-server, kaito-fake-arm): spawned
// from the directory of this binary, its port read from the `--port-file` it writes, and
// stopped with SIGTERM (and reaped) when the object goes.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace kaito::bench {

// The directory of the running binary (where the other binaries of the build are).
std::string SelfDir();

// `given`, or a new directory under /tmp when it is empty.
std::string BenchDir(const std::string& given);
// The `p` quantile (0..1) of `v` (nearest rank); 0 when empty.
double Percentile(std::vector<double> v, double p);

// CPU seconds (user + system) and resident bytes of a process, from /proc.
struct ProcSample {
  double cpu_seconds = 0;
  int64_t rss_bytes = 0;
};
ProcSample SampleProcess(pid_t pid);

class ChildProcess {
 public:
  ChildProcess() = default;
  ~ChildProcess() { Stop(); }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Starts `args` (args[0] is the binary's path) and waits up to `timeout` until
  // `port_file` holds a port.
  absl::Status Start(std::vector<std::string> args, const std::string& port_file,
                     absl::Duration timeout);
  // Starts `args` and returns at once (for a child that writes no port file).
  absl::Status Launch(std::vector<std::string> args);
  // SIGTERM, then waits for the exit. Idempotent.
  void Stop();

  pid_t pid() const { return pid_; }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace kaito::bench
