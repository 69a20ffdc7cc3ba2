#include "tools/bench/child_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace kaito::bench {

std::string BenchDir(const std::string& given) {
  if (!given.empty()) return given;
  char pattern[] = "/tmp/kaito-bench-XXXXXX";
  return mkdtemp(pattern);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

std::string SelfDir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

absl::Status ChildProcess::Start(std::vector<std::string> args, const std::string& port_file,
                                 absl::Duration timeout) {
  std::filesystem::remove(port_file);
  const std::string binary = args[0];
  if (absl::Status st = Launch(std::move(args)); !st.ok()) return st;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(port_file);
    if (in >> port_ && port_ > 0) return absl::OkStatus();
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::DeadlineExceededError(binary + " did not write its port to " + port_file);
}

absl::Status ChildProcess::Launch(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The child's stdout goes to our stderr: our stdout is the benchmark's figures (JSON).
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  const int spawned = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    pid_ = -1;
    return absl::InternalError("cannot start " + args[0]);
  }
  return absl::OkStatus();
}

void ChildProcess::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

ProcSample SampleProcess(pid_t pid) {
  ProcSample s;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  // Fields after the command (which may hold spaces) start after the last ')'.
  const size_t close = line.rfind(')');
  if (close != std::string::npos) {
    std::vector<std::string> f = absl::StrSplit(line.substr(close + 2), ' ');
    if (f.size() > 13) {
      int64_t utime = 0, stime = 0;
      (void)absl::SimpleAtoi(f[11], &utime);
      (void)absl::SimpleAtoi(f[12], &stime);
      s.cpu_seconds =
          static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
    }
  }
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      int64_t kb = 0;
      std::string v(absl::StripAsciiWhitespace(line.substr(6)));
      (void)absl::SimpleAtoi(v.substr(0, v.find(' ')), &kb);
      s.rss_bytes = kb * 1024;
    }
  }
  return s;
}

}  // namespace kaito::bench
