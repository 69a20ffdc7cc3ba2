// A cloud that creates nothing: for dev mode, tests and benchmarks (as Karpenter's KWOK
// provider). A claim is Creating at once and, `create_delay` later, either Running (with
// the GPU inventory of its instance type from the SKU catalog, and a simulated agent
// started for it through the `NodeBootstrapper`) or Failed (an injected fault, or an
// instance type the catalog does not know). It says loudly that it is a simulation.
//
// Threading: every call returns at once and completes `done` inline, on the caller's
// thread, after the lock is released. Phases advance in the clock's timer callbacks
// (one at a time: `RealClock` has one timer thread, `FakeClock` runs them in `Advance`),
// which are also where the bootstrapper is called, so a node's start and stop never race. All state
// is behind `mu_`, held briefly and never across a callback, a bootstrapper call or `done`.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/logging.h"
#include "kaito/v1/provisioner.pb.h"
#include "presets/catalog.h"
#include "provisioner/provider/node_bootstrapper.h"
#include "provisioner/provider/node_provider.h"

namespace kaito::provisioner {

struct SimulatedProviderOptions {
  // From CreateNode to Running (or Failed).
  absl::Duration create_delay = absl::Seconds(2);
  // From DeleteNode to gone.
  absl::Duration delete_delay = absl::Seconds(1);
  // The region named in the cloud's messages.
  std::string location = "simulated";
};

// Parses `TYPE=CODE[:retryable]` (the --simulated-fault flag): TYPE empty or `*` for
// every instance type; the message is left empty (the provider fills in the cloud's).
absl::StatusOr<v1::SimulatedFault> ParseSimulatedFault(const std::string& text);

// The text the cloud gives with `error_code` for `instance_type` (Azure's wording for
// QuotaExceeded, OperationNotAllowed, SkuNotAvailable, AllocationFailed,
// ZonalAllocationFailed, OverconstrainedAllocationRequest; a generic line otherwise).
std::string SimulatedCloudMessage(const std::string& error_code, const std::string& instance_type,
                                  const std::string& location);

// The stable, cloud-style names of a claim's machine.
std::string SimulatedNodeName(const std::string& claim_name);
std::string SimulatedProviderId(const std::string& cloud, const std::string& claim_name);

class SimulatedProvider : public NodeProvider {
 public:
  // `clock`, `catalog` and `bootstrapper` must outlive the provider. `cloud` selects the
  // SKU table (azure | aws | arc).
  SimulatedProvider(Clock* clock, const presets::Catalog* catalog, std::string cloud,
                    SimulatedProviderOptions options, NodeBootstrapper* bootstrapper);
  // Cancels the timers that have not run and waits for one that is running.
  ~SimulatedProvider() override;
  SimulatedProvider(const SimulatedProvider&) = delete;
  SimulatedProvider& operator=(const SimulatedProvider&) = delete;

  // Idempotent by claim name: a repeat reports the claim as it is (Creating, Running or
  // Deleting); a repeat after Failed starts a new attempt. The outcome is decided when
  // the delay ends, with the faults in force then.
  void CreateNode(const v1::CreateNodeRequest& request, NodeDone done) override;
  // NOT_FOUND for a claim never created or already gone.
  void GetNode(const std::string& claim_name, NodeDone done) override;
  // gone = true for an unknown claim; otherwise the claim is Deleting, gone = false, and
  // `delete_delay` later its agent is stopped and the claim forgotten.
  void DeleteNode(const std::string& claim_name, DeleteDone done) override;
  // Every claim, ordered by name.
  void ListNodes(ListDone done) override;
  std::string Name() const override { return "simulated"; }

  // Replaces every fault; an empty list lifts them. Creates whose delay ends later see
  // the new faults; nodes already Running or Failed are left as they are.
  void SetFaults(std::vector<v1::SimulatedFault> faults);
  std::vector<v1::SimulatedFault> faults();
  // Claims by phase (Creating, Running, Failed, Deleting), for metrics.
  std::map<std::string, int> CountByPhase();

 private:
  struct Claim {
    v1::CreateNodeRequest request;
    v1::ProvisionedNode node;
    // Bumped by every create attempt and by a delete: a timer of an older attempt is stale.
    uint64_t attempt = 0;
    // The armed timer of this claim (create or delete); 0 when none.
    uint64_t timer_token = 0;
    // Its agent was started (and must be stopped when the claim goes).
    bool started = false;
  };
  // What the log lines about `claim` are about: the claim and its workspace (from its labels).
  static LogSubject ClaimSubject(const std::string& claim_name, const Claim& claim);

  // Arms `fn(token)` after `delay`; the token identifies the timer to `Cancel` and to
  // the destructor.
  uint64_t ArmLocked(absl::Duration delay, uint64_t attempt, std::string claim_name, bool create)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelLocked(Claim& claim) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartAttemptLocked(const std::string& claim_name, Claim& claim)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnCreateDue(uint64_t token, const std::string& claim_name, uint64_t attempt);
  void OnDeleteDue(uint64_t token, const std::string& claim_name, uint64_t attempt);
  // Removes `token` from the armed set; false when the provider is stopping (the
  // callback must return without touching anything else).
  bool TakeTimerLocked(uint64_t token) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishCallbackLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const presets::Catalog* const catalog_;
  const std::string cloud_;
  const SimulatedProviderOptions options_;
  NodeBootstrapper* const bootstrapper_;

  absl::Mutex mu_;
  std::map<std::string, Claim> claims_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::SimulatedFault> faults_ ABSL_GUARDED_BY(mu_);
  // Armed timers: token -> clock timer id.
  std::map<uint64_t, Clock::TimerId> timers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
  // Unique over every claim, so a timer of a claim deleted and created again is stale.
  uint64_t next_attempt_ ABSL_GUARDED_BY(mu_) = 1;
  // Timer callbacks between taking their token and their last use of `this`.
  int callbacks_running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kaito::provisioner
