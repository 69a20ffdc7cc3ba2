// Real container infrastructure for tests, each piece started by the test in a directory of
// its own and stopped after: a Docker registry (Debian's docker-registry) on 127.0.0.1, and a
// Podman service (`podman system service`) on a unix socket, with its own storage, run
// directory and configuration (runc, cgroupfs, explicit nofile and nproc ulimits: the
// settings ../shared/reference/toolchain.md section 6 found this sandbox needs), so nothing of
// the machine's own Podman is used or touched. Test images are made from busybox-static.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "support/process.h"

namespace kaito::testing {

class LocalRegistry {
 public:
  // Starts a registry storing under `dir`, on a port the kernel picks. With `htpasswd`
  // (a bcrypt htpasswd file) it asks for basic authentication.
  static absl::StatusOr<std::unique_ptr<LocalRegistry>> Start(const std::string& dir,
                                                              const std::string& htpasswd = "");
  ~LocalRegistry();
  // "127.0.0.1:PORT".
  const std::string& host() const { return host_; }

 private:
  LocalRegistry() = default;
  Daemon daemon_;
  std::string host_;
};

class PodmanService {
 public:
  // Starts the service with its state under `dir`; `insecure_registries` are reached over
  // plain HTTP (the local registry).
  static absl::StatusOr<std::unique_ptr<PodmanService>> Start(
      const std::string& dir, const std::vector<std::string>& insecure_registries = {});
  // Removes every container, volume and image it made, stops the service and unmounts its
  // storage.
  ~PodmanService();

  // "unix:///.../podman.sock", for --docker-host.
  std::string docker_host() const { return "unix://" + socket_; }
  // Runs the podman CLI on the same storage and configuration.
  RunResult Podman(const std::vector<std::string>& args,
                   absl::Duration timeout = absl::Seconds(120)) const;
  // Makes image `tag` from a busybox-static root file system plus `files` (path in the
  // image -> content; executable when the content starts with "#!"), with `cmd` as its
  // command. Errors carry podman's output.
  absl::Status BuildBusyboxImage(const std::string& tag,
                                 const std::map<std::string, std::string>& files = {},
                                 const std::vector<std::string>& cmd = {}) const;
  // Pushes a local image to `target` (a registry reference) and removes the local tag, so a
  // pull of `target` really downloads.
  absl::Status PushAndForget(const std::string& local, const std::string& target) const;

 private:
  PodmanService() = default;
  std::vector<std::string> Env() const;

  std::string dir_;
  std::string socket_;
  Daemon daemon_;
};

}  // namespace kaito::testing
