#include "support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "common/loopback_port.h"

extern char** environ;

namespace kaito::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> v;
  for (const auto& a : args) v.push_back(const_cast<char*>(a.c_str()));
  v.push_back(nullptr);
  return v;
}

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return -1;
}

}  // namespace

RunResult RunCommand(const std::vector<std::string>& argv, const std::string& stdin_data,
              const std::vector<std::string>& env, absl::Duration timeout) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return {};
  }
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) envs.push_back(*e);
  for (const auto& e : env) envs.push_back(e);
  auto args = Argv(argv);
  auto envp = Argv(envs);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    execve(args[0], args.data(), envp.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  // Feed stdin from a thread so that a child writing lots of output cannot deadlock us.
  std::thread feeder([fd = in[1], data = stdin_data] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd, data.data() + off, data.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    close(fd);
  });
  RunResult result;
  const absl::Time deadline = absl::Now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, ms) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  for (auto& f : fds) {
    if (f.fd >= 0) close(f.fd);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  feeder.join();
  result.exit_code = DecodeStatus(status);
  return result;
}

absl::StatusOr<Daemon> Daemon::Start(const std::vector<std::string>& argv,
                                     const std::string& log_path) {
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) return absl::InternalError("open " + log_path);
  auto args = Argv(argv);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(log, 1);
    dup2(log, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(log);
  if (pid < 0) return absl::InternalError("fork failed");
  Daemon d;
  d.pid_ = pid;
  return d;
}

Daemon::Daemon(Daemon&& other) noexcept : pid_(other.pid_) { other.pid_ = -1; }

Daemon& Daemon::operator=(Daemon&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0) Kill();
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

Daemon::~Daemon() {
  if (pid_ > 0) Kill();
}

void Daemon::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int Daemon::Stop(absl::Duration timeout) {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  bool exited = WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!exited) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_ = -1;
  return exited ? DecodeStatus(status) : -SIGKILL;
}

bool Daemon::Running() {
  if (pid_ <= 0) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration deadline) {
  const absl::Time end = absl::Now() + deadline;
  absl::Duration pause = absl::Milliseconds(1);
  while (true) {
    if (condition()) return true;
    if (absl::Now() > end) return false;
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(pause));
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  if (v && *v) return v;
  const std::string n = name;
  if (n == "KAITO_BIN_DIR") return KAITO_BIN_DIR;
  if (n == "KAITO_PYTHON_DIR") return KAITO_PYTHON_DIR;
  if (n == "KAITO_SOURCE_DIR") return KAITO_SOURCE_DIR;
  if (n == "KAITO_EXAMPLES_DIR") return KAITO_EXAMPLES_DIR;
  return "";
}

int FreeLoopbackPort() { return ::kaito::FreeLoopbackPort(); }

std::string BinDir() { return Env("KAITO_BIN_DIR"); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int MetricsPortFromLog(const std::string& log_path, absl::Duration deadline) {
  int port = 0;
  WaitFor(
      [&] {
        const std::string log = ReadFile(log_path);
        const size_t at = log.find("metrics on port ");
        if (at == std::string::npos) return false;
        port = std::atoi(log.c_str() + at + 16);
        return port > 0;
      },
      deadline);
  return port;
}

bool WaitForPortFile(const std::string& path, int* port, absl::Duration deadline) {
  return WaitFor(
      [&] {
        std::string text(absl::StripAsciiWhitespace(ReadFile(path)));
        return absl::SimpleAtoi(text, port) && *port > 0;
      },
      deadline);
}

absl::StatusOr<ServerProcess> StartServer(const std::string& data_dir,
                                          const std::vector<std::string>& extra, bool dev) {
  const std::string port_file = data_dir + "/port";
  unlink(port_file.c_str());
  std::vector<std::string> argv = {BinDir() + "/kaito-server", "--listen", "127.0.0.1:0",
                                   "--metrics-listen", "127.0.0.1:0", "--data-dir", data_dir,
                                   "--port-file", port_file};
  if (dev) argv.push_back("--dev");
  argv.insert(argv.end(), extra.begin(), extra.end());
  auto daemon = Daemon::Start(argv, data_dir + "/server.log");
  if (!daemon.ok()) return daemon.status();
  ServerProcess server;
  server.daemon = std::move(*daemon);
  int port = 0;
  if (!WaitForPortFile(port_file, &port, absl::Seconds(30))) {
    return absl::DeadlineExceededError("kaito-server did not start; log:\n" +
                                       ReadFile(data_dir + "/server.log"));
  }
  server.port = port;
  return server;
}

}  // namespace kaito::testing
