// Child processes for integration tests: run a command to completion with its output,
// or start a daemon and stop it (SIGTERM, or SIGKILL to simulate a crash). Waiting is
// always on a condition with a deadline, never a fixed sleep.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kaito::testing {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` with `stdin_data`, extra environment `env` ("K=V"), up to `timeout`.
RunResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data = "",
              const std::vector<std::string>& env = {},
              absl::Duration timeout = absl::Seconds(60));

class Daemon {
 public:
  // Starts `argv` with stdout and stderr to `log_path`.
  static absl::StatusOr<Daemon> Start(const std::vector<std::string>& argv,
                                      const std::string& log_path);
  Daemon() = default;
  Daemon(Daemon&& other) noexcept;
  Daemon& operator=(Daemon&& other) noexcept;
  ~Daemon();

  pid_t pid() const { return pid_; }
  // SIGKILL, then reap.
  void Kill();
  // SIGTERM and wait up to `timeout`; SIGKILL after. Returns the exit status (or -signal).
  int Stop(absl::Duration timeout = absl::Seconds(10));
  bool Running();

 private:
  pid_t pid_ = -1;
};

// A 127.0.0.1 port the kernel hands out now (bound to port 0, then released), for servers
// that cannot bind port 0 themselves and report it; 0 on failure.
int FreeLoopbackPort();

// Polls `condition` every few milliseconds until it holds or `deadline` passes.
bool WaitFor(const std::function<bool()>& condition, absl::Duration deadline);

// The environment variable `name`, or for KAITO_BIN_DIR, KAITO_PYTHON_DIR,
// KAITO_SOURCE_DIR and KAITO_EXAMPLES_DIR the location this build was configured with.
std::string BinDir();
std::string Env(const char* name);
std::string ReadFile(const std::string& path);

// The port of a daemon's log line "... metrics on port N ..." (every daemon logs one at
// start), waiting up to `deadline` for it; 0 when none appears.
int MetricsPortFromLog(const std::string& log_path, absl::Duration deadline = absl::Seconds(20));

// Waits until a daemon's --port-file holds a port; false at the deadline.
bool WaitForPortFile(const std::string& path, int* port, absl::Duration deadline);

// Starts kaito-server on port 0 with its data under `data_dir` and waits for its port
// file. `extra` flags are appended; `dev` false leaves out --dev (bring-your-own nodes).
struct ServerProcess {
  Daemon daemon;
  int port = 0;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};
absl::StatusOr<ServerProcess> StartServer(const std::string& data_dir,
                                          const std::vector<std::string>& extra = {},
                                          bool dev = true);

}  // namespace kaito::testing
