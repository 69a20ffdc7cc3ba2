// A container runtime in which nothing runs: a SIMULATION for dev mode, scale benchmarks and
// tests. Each step completes after a configured delay on the injected clock; faults are
// injected by image substring or workload name. Nothing is pulled, no process starts, no port
// answers.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/runtime/container_runtime.h"
#include "agent/work_serializer.h"
#include "common/clock.h"

namespace kaito::agent {

struct SimulatedFault {
  enum class Kind {
    // PullImage fails with NOT_FOUND (image not found). Matches the image only.
    kPullFailure,
    // StartContainer fails with FAILED_PRECONDITION (e.g. executable not found).
    kStartFailure,
    // The container exits with `exit_code`, `after` its start; again after every restart.
    kCrash,
    // The container is OOM-killed (exit 137), `after` its start.
    kOomKill,
    // The container runs but its health never turns healthy.
    kNeverReady,
  };
  // A substring of the image, or of the workload name (label `kaito.sh/workload-name`).
  std::string match;
  Kind kind = Kind::kCrash;
  absl::Duration after = absl::Seconds(5);
  int exit_code = 1;
};

// Parses `SUBSTRING=pull|start|crash[:AFTER[:EXIT_CODE]]|oom[:AFTER]|never-ready`, e.g.
// "llama=crash:10s:3". INVALID_ARGUMENT names what is wrong.
absl::StatusOr<SimulatedFault> ParseSimulatedFault(const std::string& spec);
const char* SimulatedFaultKindName(SimulatedFault::Kind kind);

// The simulation's rules:
// - A pull takes `pull_delay` the first time per image, no time after (the image is cached).
// - Create completes at once; start takes `start_delay`, then the container runs.
// - A container labelled `kaito.sh/container-kind=init` or `kaito.sh/restart-policy=Never`
//   runs to completion: it exits 0 `job_duration` after its start. Any other container runs
//   until stopped, with health kStarting, then kHealthy `ready_delay` after its start (every
//   long-running container is taken to have a readiness check that passes).
// - Stop: the process exits on SIGTERM after `stop_delay` (exit 143), or is killed at the
//   grace period when that is shorter (exit 137).
// Thread-safe; timer work runs on the clock's thread (inside `FakeClock::Advance` in tests),
// serialized by a strand, and callbacks run with no lock held. Destroying it cancels its
// timers and waits for one that is running.
class SimulatedRuntime : public ContainerRuntime {
 public:
  struct Options {
    absl::Duration pull_delay = absl::Milliseconds(500);
    absl::Duration start_delay = absl::Milliseconds(500);
    absl::Duration ready_delay = absl::Seconds(1);
    absl::Duration job_duration = absl::Seconds(3);
    absl::Duration stop_delay = absl::ZeroDuration();
    std::vector<SimulatedFault> faults;
  };

  // Logs once per process, at info level, that containers are simulated.
  SimulatedRuntime(Clock* clock, Options options);
  ~SimulatedRuntime() override;
  SimulatedRuntime(const SimulatedRuntime&) = delete;
  SimulatedRuntime& operator=(const SimulatedRuntime&) = delete;

  std::string name() const override { return "simulated"; }
  void PullImage(const std::string& image, StatusCallback done) override;
  void CreateContainer(const ContainerConfig& config,
                       absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override;
  void StartContainer(const std::string& id, StatusCallback done) override;
  void InspectContainer(const std::string& id,
                        absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) override;
  void StopContainer(const std::string& id, absl::Duration grace, StatusCallback done) override;
  void RemoveContainer(const std::string& id, StatusCallback done) override;
  // What a simulated container "wrote": one line per run that ended, naming its exit.
  void ContainerLogs(const std::string& id, int tail_lines,
                     absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override;
  void ListContainers(
      const std::map<std::string, std::string>& labels,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done) override;
  ListenerId AddListener(Listener listener) override;
  void RemoveListener(ListenerId id) override;

  // Faults apply to pulls and starts that begin after the call.
  void AddFault(SimulatedFault fault);
  void ClearFaults();

  // For tests and benchmarks: a synchronous view of the simulated state.
  std::vector<ContainerInfo> Containers();
  // Times StartContainer has begun a run (first starts and restarts).
  int starts();
  int pulls();

 private:
  struct Container {
    ContainerConfig config;
    ContainerInfo info;
    // Bumped at every start and stop, so that timers of an earlier run do nothing.
    uint64_t run = 0;
    bool stopping = false;
  };

  // Arms `fn` after `delay` on the clock; it runs on the strand.
  void After(absl::Duration delay, absl::AnyInvocable<void()> fn);
  const SimulatedFault* FindFaultLocked(SimulatedFault::Kind kind, const std::string& image,
                                        const std::map<std::string, std::string>& labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a state change of a container's run `run` (ignored when stale) and tells the
  // listeners.
  void Exit(const std::string& id, uint64_t run, int exit_code, bool oom, const std::string& error);
  void SetHealthy(const std::string& id, uint64_t run);
  void Notify(const ContainerInfo& info);

  Clock* const clock_;
  const Options options_;
  const std::shared_ptr<WorkSerializer> strand_ = std::make_shared<WorkSerializer>();
  absl::Mutex mu_;
  std::vector<SimulatedFault> faults_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> images_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Container> containers_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> id_by_name_ ABSL_GUARDED_BY(mu_);
  std::map<ListenerId, std::shared_ptr<Listener>> listeners_ ABSL_GUARDED_BY(mu_);
  std::set<Clock::TimerId> timers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  ListenerId next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  int starts_ ABSL_GUARDED_BY(mu_) = 0;
  int pulls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kaito::agent
