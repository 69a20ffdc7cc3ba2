// The container runtime seam of the agent: container-level and asynchronous, shaped after the
// Docker Engine API (which Docker and Podman both serve), so that the Docker runtime is a thin
// adapter. `SimulatedRuntime` is the fake beside it (nothing runs).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kaito::agent {

enum class ContainerState { kCreated, kRunning, kExited };
// What the runtime itself knows of readiness (Docker's `State.Health`): kNone when the
// container has no health check.
enum class ContainerHealth { kNone, kStarting, kHealthy, kUnhealthy };

const char* ContainerStateName(ContainerState state);
const char* ContainerHealthName(ContainerHealth health);

struct Mount {
  enum class Type { kVolume, kTmpfs, kBind };
  Type type = Type::kVolume;
  // Volume name or host path; empty for tmpfs.
  std::string source;
  std::string target;
  bool read_only = false;
};

// A readiness check the runtime runs itself (Docker's HEALTHCHECK); from the workload's
// readiness probe.
struct HealthCheck {
  std::string http_path;
  int port = 0;
  std::vector<std::string> exec;
  absl::Duration interval = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(1);
  absl::Duration start_period = absl::ZeroDuration();
  int retries = 3;
};

struct ContainerConfig {
  // Unique on the runtime.
  std::string name;
  std::string image;
  // Docker's Entrypoint and Cmd (Kubernetes' command and args).
  std::vector<std::string> entrypoint;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::map<std::string, std::string> labels;
  std::vector<int> ports;
  // GPUs to attach (Docker device requests by count, Podman CDI names).
  int gpus = 0;
  std::vector<Mount> mounts;
  std::optional<HealthCheck> health_check;
};

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::map<std::string, std::string> labels;
  ContainerState state = ContainerState::kCreated;
  ContainerHealth health = ContainerHealth::kNone;
  // Of the last run, once exited.
  int exit_code = 0;
  bool oom_killed = false;
  // Why the runtime could not run it (Docker's `State.Error`), or empty.
  std::string error;
  absl::Time created_at = absl::InfinitePast();
  absl::Time started_at = absl::InfinitePast();
  absl::Time finished_at = absl::InfinitePast();
  // Container port -> the host port it is published on, for runtimes that publish ports on
  // ports of their choosing (Docker); empty when the container's ports are the host's.
  std::map<int, int> host_ports;
};

// Contract, for every implementation:
// - No method blocks and none runs its callback inline: `done` runs later, exactly once, on a
//   thread of the runtime (or the clock's timer thread), without any lock of the runtime held.
//   Callbacks must not block. Destroying the runtime drops the callbacks that have not run.
// - Errors are classified once, here, by code; callers decide the retry by code only:
//   NOT_FOUND: no such image (pull) or container. ALREADY_EXISTS: the name is taken.
//   FAILED_PRECONDITION: the container cannot start (bad command, runtime refused it) or is in
//   the wrong state (remove while running). PERMISSION_DENIED / UNAUTHENTICATED: registry
//   credentials. INVALID_ARGUMENT: a malformed config or reference. UNAVAILABLE,
//   DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL: the runtime or registry is in trouble;
//   retry with backoff.
// - Start of a running container and stop of a stopped one succeed and change nothing;
//   start of an exited container runs it again (a restart).
// - Listeners see every state or health change of every container, in order per container.
//   They are the fast path; callers must still re-read state (`InspectContainer`) from time
//   to time, as an event may be lost (the Docker event stream reconnects).
// Implementations are thread-safe.
class ContainerRuntime {
 public:
  using StatusCallback = absl::AnyInvocable<void(absl::Status)>;
  using ListenerId = uint64_t;
  using Listener = std::function<void(const ContainerInfo&)>;

  virtual ~ContainerRuntime() = default;

  // "simulated", "docker".
  virtual std::string name() const = 0;

  virtual void PullImage(const std::string& image, StatusCallback done) = 0;
  // Returns the container's id.
  virtual void CreateContainer(const ContainerConfig& config,
                               absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) = 0;
  // Completes once the process runs (or could not be started).
  virtual void StartContainer(const std::string& id, StatusCallback done) = 0;
  virtual void InspectContainer(const std::string& id,
                                absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) = 0;
  // SIGTERM, then SIGKILL after `grace`; completes once the container has exited.
  virtual void StopContainer(const std::string& id, absl::Duration grace, StatusCallback done) = 0;
  // Removes a container that does not run (FAILED_PRECONDITION while it runs).
  virtual void RemoveContainer(const std::string& id, StatusCallback done) = 0;
  // The last `tail_lines` lines the container wrote (stdout and stderr as the runtime
  // interleaves them), at most 64 KiB; for the message of a failed container.
  virtual void ContainerLogs(const std::string& id, int tail_lines,
                             absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) = 0;
  // Every container whose labels include all of `labels`.
  virtual void ListContainers(
      const std::map<std::string, std::string>& labels,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done) = 0;

  // `listener` is called with the container's new state after every change. After
  // `RemoveListener` it is not called again, except that one call already under way on
  // another thread may still finish: let it capture only what outlives that (e.g. a
  // `std::shared_ptr<WorkSerializer>` whose closures check their owner).
  virtual ListenerId AddListener(Listener listener) = 0;
  virtual void RemoveListener(ListenerId id) = 0;
};

// True for the codes that mean "try again later" (see the contract above).
bool IsTransientRuntimeError(const absl::Status& status);

}  // namespace kaito::agent
