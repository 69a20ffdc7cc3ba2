// Converges one node to the desired set of `v1::Workload`s through a `ContainerRuntime`, and
// reports each workload's status as it changes. The agent's equivalent of kubelet's pod
// workers, without a thread per workload: every step is a runtime callback or a clock timer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/data/workload_data.h"
#include "agent/runtime/container_runtime.h"
#include "agent/work_serializer.h"
#include "common/clock.h"
#include "common/logging.h"
#include "kaito/v1/agent.pb.h"
#include "kaito/v1/workload.pb.h"

namespace kaito::agent {

struct WorkloadSupervisorOptions {
  // Labelled on every container, so that agents sharing one runtime leave each other's alone.
  std::string node_name;
  // The host part of a Ready inference workload's endpoint.
  std::string node_address = "127.0.0.1";
  // Restarts of an inference ("Always") workload before it is Failed.
  int max_restarts = 5;
  // Crash-loop backoff as kubelet's: 10 s doubling to 5 min; a run that lasted
  // `crash_backoff_reset` forgives the earlier crashes.
  absl::Duration crash_backoff_initial = absl::Seconds(10);
  absl::Duration crash_backoff_max = absl::Minutes(5);
  absl::Duration crash_backoff_reset = absl::Minutes(10);
  // Backoff of runtime calls that failed with a transient code.
  absl::Duration retry_initial = absl::Seconds(1);
  absl::Duration retry_max = absl::Seconds(30);
  // How often every container is inspected again, in case a runtime event was lost.
  absl::Duration resync_interval = absl::Seconds(30);
  // When the spec sets no termination grace period.
  absl::Duration default_grace = absl::Seconds(30);
  // The agent's own transfers (downloads, pushes) and the directories of their volumes; not
  // owned. Null: they are simulated (skipped, with a log line), as for simulated nodes.
  WorkloadData* data = nullptr;
};

// What a workload goes through (`v1::WorkloadStatus.phase`): Pending (accepted; waits for an
// older incarnation of the same name to be removed) -> Pulling (every image) -> Starting (init
// containers in order, each to exit 0; then the containers are created and started; also while
// a crashed container waits out its backoff) -> Running -> Ready (restart policy "Always":
// every container runs and is healthy as the runtime reports it) or Succeeded / Failed
// (restart policy "Never": every container exited 0, or one did not).
// A workload with downloads (a tuning job's input URLs) has them fetched by the agent first,
// in phase Pulling (progress in `data_bytes`); one with a push has its output pushed once its
// containers exited 0, in phase Running, and only then Succeeded. The volumes they use are
// directories of the agent's (`WorkloadData::VolumeDir`), bind-mounted into the containers.
// Failure reasons, as Kaito classifies pods: ImagePullError, ContainerStartError,
// ContainerOOMKilled, ContainerCrashLoopBackOff (inference, after `max_restarts` restarts; or
// ContainerOOMKilled when the last exit was an OOM kill), JobFailed (tuning, non-zero exit).
// Transient runtime errors are retried with backoff and keep the phase.
//
// Every container carries the labels of `container_labels.h`; `Recover` adopts containers that
// carry them, so an agent restart restarts nothing.
//
// Threading: every method must be called on `strand`, which also runs every runtime callback
// and timer of the supervisor; the state has no lock. `on_change` runs on the strand and must
// not call back into the supervisor except for the const accessors. Destroy the supervisor on
// the strand, or after the strand is closed.
class WorkloadSupervisor {
 public:
  using ChangeCallback = absl::AnyInvocable<void(const v1::WorkloadReport&)>;

  // `clock` and `runtime` are not owned and must outlive the supervisor.
  WorkloadSupervisor(WorkloadSupervisorOptions options, Clock* clock, ContainerRuntime* runtime,
                     std::shared_ptr<WorkSerializer> strand, ChangeCallback on_change);
  ~WorkloadSupervisor();
  WorkloadSupervisor(const WorkloadSupervisor&) = delete;
  WorkloadSupervisor& operator=(const WorkloadSupervisor&) = delete;

  // Lists the containers labelled for this node and adopts every complete workload (one whose
  // containers all exist): it is reported (`Reports`) and supervised, and it is kept when the
  // first desired set names the same uid and generation. Half-created workloads and labelled
  // containers of no workload are removed. `done` runs on the strand; an error is the
  // runtime's (nothing adopted; call again).
  void Recover(absl::AnyInvocable<void(absl::Status)> done);

  // Converges to `workloads`, the full desired set, unless `generation` is not newer than the
  // last one applied (then returns false and changes nothing). A workload is identified by
  // namespace/name; a different uid or metadata.generation replaces its containers; one not
  // in the set is stopped with its grace period and removed.
  bool Apply(int64_t generation, const std::vector<v1::Workload>& workloads);
  // Forgets the last generation, so that the next `Apply` is taken whatever its number (a new
  // session may come from a server whose counter started again).
  void ResetGeneration();
  std::optional<int64_t> applied_generation() const { return applied_generation_; }

  // One report per workload of the desired set (or adopted), not those being removed.
  std::vector<v1::WorkloadReport> Reports() const;
  // The status of namespace/name, or null.
  const v1::WorkloadStatus* Find(const std::string& ns, const std::string& name) const;
  // Workloads being stopped and removed.
  size_t terminating() const;

  // Cancels the timers and stops listening to the runtime; containers are left as they are.
  // Idempotent; the destructor calls it.
  void Shutdown();

 private:
  struct Container;
  struct Workload;
  enum class Stage;
  // What the log lines about `w` are about: the workload and its workspace.
  static LogSubject About(const Workload& w);

  Workload* Lookup(uint64_t serial);
  // Posts `fn(serial)` to the strand, unless the supervisor is gone by then.
  template <typename F>
  auto Callback(uint64_t serial, F fn);

  void AdoptListed(std::vector<ContainerInfo> containers);
  uint64_t AddWorkload(std::unique_ptr<Workload> w);
  void Terminate(Workload& w);
  // Drives `w` one step further from where it stands; every completion calls it.
  void Advance(uint64_t serial);
  void AdvanceTermination(Workload& w);
  void StartPulls(Workload& w);
  void CreateContainer(Workload& w, Container& c);
  void StartContainer(Workload& w, Container& c);
  void OnContainerInfo(const ContainerInfo& info);
  void HandleExit(Workload& w, Container& c);
  void FailedRun(Workload& w, Container& c);
  // The next download of `w`, or the move to the pulls when none is left.
  void NextDownload(Workload& w);
  // Every container exited 0: the push, when the workload has one, then Succeeded.
  void Complete(Workload& w);
  // Appends the last lines `c` wrote to the workload's message, once the runtime has them,
  // unless the message has moved on by then.
  void AttachLogTail(Workload& w, const Container& c);
  void Finish(Workload& w, bool succeeded, const std::string& reason, const std::string& message);
  void StopOthers(Workload& w, const Container* except);
  void RetryLater(Workload& w, const std::string& what, const absl::Status& status);
  void Resync();
  void ArmResync();
  void UpdateStatus(Workload& w);
  Container* ContainerOf(Workload& w, const std::string& id);

  const WorkloadSupervisorOptions options_;
  Clock* const clock_;
  ContainerRuntime* const runtime_;
  const std::shared_ptr<WorkSerializer> strand_;
  ChangeCallback on_change_;
  // False once shut down; closures posted by callbacks check it on the strand.
  const std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  ContainerRuntime::ListenerId listener_ = 0;
  Clock::TimerId resync_timer_ = 0;
  bool shut_down_ = false;

  std::optional<int64_t> applied_generation_;
  uint64_t next_serial_ = 1;
  // Every workload, including those being removed, by serial.
  std::map<uint64_t, std::unique_ptr<Workload>> workloads_;
  // namespace/name -> serial of the incarnation that should run.
  std::map<std::string, uint64_t> current_;
  // Container id -> serial of its workload.
  std::map<std::string, uint64_t> by_container_;
};

}  // namespace kaito::agent
