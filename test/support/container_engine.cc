#include "support/container_engine.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kaito::testing {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) return absl::InternalError("cannot write " + path);
  return absl::OkStatus();
}

std::string Output(const RunResult& r) { return absl::StrCat(r.out, r.err); }

// The busybox-static binary the test images are made of.
constexpr char kBusybox[] = "/bin/busybox";

}  // namespace

absl::StatusOr<std::unique_ptr<LocalRegistry>> LocalRegistry::Start(const std::string& dir,
                                                                    const std::string& htpasswd) {
  std::filesystem::create_directories(dir + "/data");
  std::string config = absl::StrCat(
      "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: ", dir,
      "/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n");
  if (!htpasswd.empty()) {
    absl::StrAppend(&config, "auth:\n  htpasswd:\n    realm: kaito-test\n    path: ", htpasswd,
                    "\n");
  }
  if (absl::Status s = WriteFile(dir + "/config.yml", config); !s.ok()) return s;
  const std::string log = dir + "/registry.log";
  auto daemon = Daemon::Start({"/usr/bin/docker-registry", "serve", dir + "/config.yml"}, log);
  if (!daemon.ok()) return daemon.status();
  std::unique_ptr<LocalRegistry> registry(new LocalRegistry());
  registry->daemon_ = *std::move(daemon);
  // The registry logs the address it bound: "listening on 127.0.0.1:PORT".
  const std::regex listening("listening on (127\\.0\\.0\\.1:[0-9]+)");
  const bool up = WaitFor(
      [&] {
        std::smatch m;
        const std::string text = ReadFile(log);
        if (!std::regex_search(text, m, listening)) return false;
        registry->host_ = m[1];
        return true;
      },
      absl::Seconds(20));
  if (!up) {
    return absl::UnavailableError("docker-registry did not start: " + ReadFile(log));
  }
  return registry;
}

LocalRegistry::~LocalRegistry() { daemon_.Stop(); }

std::vector<std::string> PodmanService::Env() const {
  return {"CONTAINERS_CONF=" + dir_ + "/containers.conf",
          "CONTAINERS_REGISTRIES_CONF=" + dir_ + "/registries.conf"};
}

RunResult PodmanService::Podman(const std::vector<std::string>& args,
                                absl::Duration timeout) const {
  std::vector<std::string> argv = {"/usr/bin/podman", "--root",           dir_ + "/root",
                                   "--runroot",       dir_ + "/runroot",  "--tmpdir",
                                   dir_ + "/tmp",     "--storage-driver", "overlay"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, "", Env(), timeout);
}

absl::StatusOr<std::unique_ptr<PodmanService>> PodmanService::Start(
    const std::string& dir, const std::vector<std::string>& insecure_registries) {
  std::unique_ptr<PodmanService> service(new PodmanService());
  service->dir_ = dir;
  service->socket_ = dir + "/podman.sock";
  for (const char* sub : {"/root", "/runroot", "/tmp"}) {
    std::filesystem::create_directories(dir + sub);
  }
  const std::string conf = absl::StrCat(
      "[containers]\n"
      "default_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n"
      "[engine]\n"
      "runtime = \"runc\"\n"
      "cgroup_manager = \"cgroupfs\"\n"
      "events_logger = \"file\"\n"
      "events_logfile_path = \"",
      dir, "/events.log\"\n");
  if (absl::Status s = WriteFile(dir + "/containers.conf", conf); !s.ok()) return s;
  std::string registries;
  for (const std::string& r : insecure_registries) {
    absl::StrAppend(&registries, "[[registry]]\nlocation = \"", r, "\"\ninsecure = true\n");
  }
  if (absl::Status s = WriteFile(dir + "/registries.conf", registries); !s.ok()) return s;
  std::vector<std::string> argv = {"/usr/bin/env"};
  for (const std::string& e : service->Env()) argv.push_back(e);
  for (const char* a : {"/usr/bin/podman", "--root"}) argv.push_back(a);
  argv.insert(argv.end(), {dir + "/root", "--runroot", dir + "/runroot", "--tmpdir", dir + "/tmp",
                           "--storage-driver", "overlay", "system", "service", "--time=0",
                           "unix://" + service->socket_});
  auto daemon = Daemon::Start(argv, dir + "/podman-service.log");
  if (!daemon.ok()) return daemon.status();
  service->daemon_ = *std::move(daemon);
  struct stat st;
  if (!WaitFor([&] { return stat(service->socket_.c_str(), &st) == 0; }, absl::Seconds(30))) {
    return absl::UnavailableError("podman system service did not open its socket: " +
                                  ReadFile(dir + "/podman-service.log"));
  }
  return service;
}

PodmanService::~PodmanService() {
  Podman({"rm", "--all", "--force", "--time", "0"});
  Podman({"volume", "prune", "--force"});
  Podman({"rmi", "--all", "--force"});
  daemon_.Stop();
  // containers/storage bind-mounts its overlay directory onto itself; every mount under the
  // directory goes before the directory does.
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  std::vector<std::string> ours;
  while (std::getline(mounts, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 1 && absl::StartsWith(fields[1], dir_ + "/")) ours.push_back(fields[1]);
  }
  for (auto it = ours.rbegin(); it != ours.rend(); ++it) umount2(it->c_str(), MNT_DETACH);
}

absl::Status PodmanService::BuildBusyboxImage(const std::string& tag,
                                              const std::map<std::string, std::string>& files,
                                              const std::vector<std::string>& cmd) const {
  const std::string root = absl::StrCat(dir_, "/image-", std::hash<std::string>{}(tag));
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  std::filesystem::create_directories(root + "/bin");
  std::filesystem::create_directories(root + "/tmp");
  std::filesystem::copy_file(kBusybox, root + "/bin/busybox", ec);
  if (ec) return absl::InternalError("cannot copy " + std::string(kBusybox) + ": " + ec.message());
  // The applets the tests' scripts use, as busybox's own installer would link them.
  for (const char* applet : {"sh",     "sleep", "cat",  "echo",  "httpd", "wget", "ls", "mkdir",
                             "printf", "test",  "true", "false", "kill",  "env",  "nc", "sha256sum",
                             "wc",     "head",  "tail", "cp",    "rm",    "date", "id"}) {
    std::filesystem::create_symlink("busybox", root + "/bin/" + applet, ec);
  }
  for (const auto& [path, content] : files) {
    const std::string full = root + "/" + path;
    std::filesystem::create_directories(std::filesystem::path(full).parent_path());
    if (absl::Status s = WriteFile(full, content); !s.ok()) return s;
    if (absl::StartsWith(content, "#!")) chmod(full.c_str(), 0755);
  }
  const std::string tar = root + ".tar";
  RunResult packed = RunCommand({"/bin/tar", "-C", root, "-cf", tar, "."});
  if (packed.exit_code != 0) return absl::InternalError("tar: " + Output(packed));
  std::vector<std::string> args = {"import"};
  if (!cmd.empty()) {
    std::vector<std::string> quoted;
    for (const std::string& c : cmd) quoted.push_back("\"" + c + "\"");
    args.push_back("--change");
    args.push_back("CMD [" + absl::StrJoin(quoted, ",") + "]");
  }
  args.push_back(tar);
  args.push_back(tag);
  RunResult imported = Podman(args);
  if (imported.exit_code != 0) return absl::InternalError("podman import: " + Output(imported));
  return absl::OkStatus();
}

absl::Status PodmanService::PushAndForget(const std::string& local,
                                          const std::string& target) const {
  RunResult pushed = Podman({"push", "--tls-verify=false", local, target});
  if (pushed.exit_code != 0) return absl::InternalError("podman push: " + Output(pushed));
  RunResult removed = Podman({"rmi", local});
  if (removed.exit_code != 0) return absl::InternalError("podman rmi: " + Output(removed));
  return absl::OkStatus();
}

}  // namespace kaito::testing
