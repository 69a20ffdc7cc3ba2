// The Azure provider: one AKS agent pool with one node per node claim, named by the
// claim, through the agent-pool REST API of Azure Resource Manager (the calls Kaito's
// gpu-provisioner makes), with ARM's long-running operations polled as records on the
// clock's timers, so no thread is held for an operation and any number of claims can be
// in flight.
//
// Azure is the source of truth: the provider keeps no database. `Start()` lists the pools
// that are ours and adopts them; a create of a claim whose pool exists resumes it (no
// duplicate pool), and a pool that is not ours (no `kaito.sh/nodeclaim` label naming it and
// no `kaito-managed-by` tag) is never changed or deleted, whatever is asked.
//
// Phases as ProvisionedNode reports them: Creating (the pool's operation runs, or the
// pool exists and its VM is looked up), Running (the pool Succeeded and its VM's name and
// resource id are known), Failed (error_code is the class of ClassifyArmError, or
// CreateTimeout, PoolNameConflict; retryable as classified), Deleting.
//
// Threading: every call returns at once; `done` runs on the caller's thread (a claim known
// in memory) or on the HTTP client's thread, never under `mu_`. Claim state is behind `mu_`;
// each create or delete bumps the claim's `generation`, so a completion of an older step is
// dropped. Shutdown: `Stop()`, then the ARM client's, then the clock, then the HTTP client.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/logging.h"
#include "nlohmann/json.hpp"
#include "provisioner/azure/arm_client.h"
#include "provisioner/azure/lro.h"
#include "provisioner/provider/node_provider.h"

namespace kaito::provisioner::azure {

// Node label naming a pool's claim (ownership, with the tag below).
inline constexpr char kLabelNodeClaim[] = "kaito.sh/nodeclaim";
inline constexpr char kLabelCreationTimestamp[] = "kaito.sh/creation-timestamp";
// Agent-pool tag that marks a pool as created by this provisioner.
inline constexpr char kTagManagedBy[] = "kaito-managed-by";
inline constexpr char kTagManagedByValue[] = "kaito-provisioner";

struct AzureProviderOptions {
  std::string arm_endpoint = "https://management.azure.com";
  std::string subscription_id;
  std::string resource_group;
  std::string cluster_name;
  std::string location;
  std::string api_version = "2024-01-01";
  std::string compute_api_version = "2024-03-01";
  // Between polls of an operation when ARM gives no Retry-After (Azure's SDKs: 30 s).
  absl::Duration poll_interval = absl::Seconds(15);
  // Polls never come sooner than this, whatever Retry-After says.
  absl::Duration min_poll_interval = absl::Seconds(1);
  // A create not Running after this fails (CreateTimeout, retryable) and its pool is deleted.
  absl::Duration create_timeout = absl::Minutes(30);
  // After the pool Succeeded, between lookups of its VM.
  absl::Duration vm_lookup_interval = absl::Seconds(5);
  // The compute usages (vCPU quota) are read again when older than this; no check when
  // `location` is empty.
  absl::Duration quota_cache_ttl = absl::Seconds(30);
  bool quota_check = true;
};

// One quota family's vCPUs as Azure reports them.
struct QuotaUsage {
  int64_t used = 0;
  int64_t limit = 0;
};

// Reads `GET .../providers/Microsoft.Compute/locations/{l}/usages`: family name ->
// usage (`cores` is the regional total). INVALID_ARGUMENT when the body is not a usage list.
absl::StatusOr<std::map<std::string, QuotaUsage>> ParseUsages(const std::string& body);

// The pool name rule of AKS user pools (Linux): `^[a-z][a-z0-9]{0,11}$`.
bool IsValidPoolName(const std::string& name);

// The PUT body of a claim's pool (exposed for tests): count 1, vmSize, VMSS, Linux, the
// image family, osDiskSizeGB, node labels (the claim's plus ownership), taints
// (`key=value:Effect`), tags.
nlohmann::json PoolBody(const v1::CreateNodeRequest& request, absl::Time now);

// True when `pool` (an agent pool as ARM returns it) is the pool of claim `name` created by
// this provisioner.
bool IsOwnedPool(const nlohmann::json& pool, const std::string& name);

class AzureProvider : public NodeProvider, public std::enable_shared_from_this<AzureProvider> {
 public:
  static std::shared_ptr<AzureProvider> Create(AzureProviderOptions options,
                                               std::shared_ptr<ArmClient> arm, Clock* clock);

  // Lists the pools that are ours and adopts them (resumes creates and deletes). `done`
  // gets the list's outcome (an error is logged by the caller; claims are adopted later
  // through CreateNode then).
  void Start(absl::AnyInvocable<void(absl::Status) &&> done);
  // No timer or request is started after it returns.
  void Stop();

  void CreateNode(const v1::CreateNodeRequest& request, NodeDone done) override;
  void GetNode(const std::string& claim_name, NodeDone done) override;
  void DeleteNode(const std::string& claim_name, DeleteDone done) override;
  void ListNodes(ListDone done) override;
  // From the compute usages (cached as for the quota check) and the creates in flight.
  void GetQuota(const v1::GetQuotaRequest& request, QuotaDone done) override;
  std::string Name() const override { return "azure"; }

  // Claims by phase, for metrics.
  std::map<std::string, int> CountByPhase();

 private:
  struct Claim {
    v1::ProvisionedNode node;
    std::optional<v1::CreateNodeRequest> request;
    uint64_t generation = 0;
    Operation op;
    Clock::TimerId step_timer = 0;
    Clock::TimerId deadline_timer = 0;
    // When it passed the quota check, then when its PUT was accepted (monotonic; zero
    // before): a create held after the usage snapshot holds quota the snapshot does not show.
    absl::Duration quota_held_since;
    // What its log lines are about: the claim and its workspace.
    LogSubject about;
  };
  struct UsageSnapshot {
    std::map<std::string, QuotaUsage> families;
    absl::Duration taken;
  };
  using UsagesDone = absl::AnyInvocable<void(absl::StatusOr<UsageSnapshot>) &&>;
  using Step = void (AzureProvider::*)(const std::string& name, uint64_t generation);

  AzureProvider(AzureProviderOptions options, std::shared_ptr<ArmClient> arm, Clock* clock);

  std::string ClusterUrl() const;
  // The subject of log lines about claim `name` (takes mu_).
  LogSubject About(const std::string& name) ABSL_LOCKS_EXCLUDED(mu_);
  std::string PoolUrl(const std::string& name) const;
  // The VM scale sets of the cluster's node resource group.
  std::string ScaleSetsUrl(const std::string& node_resource_group) const;
  std::string WithApiVersion(const std::string& url, const std::string& version) const;

  // The claim when its generation is still `generation`.
  Claim* CurrentLocked(const std::string& name, uint64_t generation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `step` after `delay` unless the claim moved on; replaces the claim's step timer.
  void ScheduleLocked(const std::string& name, Claim& claim, absl::Duration delay, Step step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CancelTimersLocked(Claim& claim) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Starts a new create attempt of a claim whose request is known.
  uint64_t BeginAttemptLocked(const std::string& name, Claim& claim)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fail with the class and message of ARM's `error`.
  void FailWith(const std::string& name, uint64_t generation, const ArmError& error,
                bool delete_pool);
  void Fail(const std::string& name, uint64_t generation, const std::string& reason, bool retryable,
            const std::string& message, bool delete_pool);
  // What the claim's operation polls, while `generation` is current.
  std::optional<std::string> PollUrl(const std::string& name, uint64_t generation);
  // The delay before the next poll: Retry-After within bounds, else the poll interval.
  absl::Duration PollDelay(const http::Response& response) const;

  // Create steps.
  void LookUpPool(const std::string& name, uint64_t generation);
  // Refuses a create that the vCPU quota cannot hold (QuotaExceeded) before any PUT.
  void CheckQuota(const std::string& name, uint64_t generation);
  void WithUsages(UsagesDone done);
  // One quota a create draws on: the size's family, or "cores" (the regional total), with
  // the vCPUs our creates accepted after the snapshot hold in it (the snapshot does not
  // show them yet).
  struct QuotaPool {
    std::string name;
    QuotaUsage usage;
    int64_t reserved = 0;
  };
  // The family's pool, then the regional one, as far as the snapshot lists them; creates of
  // claim `except` are not counted.
  std::vector<QuotaPool> QuotaPoolsLocked(const UsageSnapshot& snapshot, const std::string& family,
                                          const std::string& except)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PutPool(const std::string& name, uint64_t generation);
  void PollCreate(const std::string& name, uint64_t generation);
  void FinalGet(const std::string& name, uint64_t generation);
  void ResolveVm(const std::string& name, uint64_t generation);
  void OnCreateProgress(const std::string& name, uint64_t generation, const nlohmann::json& pool);
  // Delete steps.
  void StartDelete(const std::string& name, uint64_t generation);
  void PollDelete(const std::string& name, uint64_t generation);
  void Forget(const std::string& name, uint64_t generation);

  // The VM scale sets of the node resource group by pool (`aks-managed-poolName` tag ->
  // scale set name), from a list requested no earlier than `requested_after`. Claims whose
  // pools succeed together share lists: one is sent at most every `kScaleSetCoalesce`, for
  // every claim that asked since the one before (one request per batch, not per claim).
  using ScaleSetsDone =
      absl::AnyInvocable<void(absl::StatusOr<std::map<std::string, std::string>>) &&>;
  void WithScaleSets(absl::Duration requested_after, ScaleSetsDone done);
  // Sends a list for the waiting claims (`mu_` not held).
  void FetchScaleSets();
  // The node resource group (MC_...) of the cluster, read once.
  void WithNodeResourceGroup(absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done);
  // Every page of a LIST.
  void ListAll(std::string url, std::vector<nlohmann::json> items,
               absl::AnyInvocable<void(absl::StatusOr<std::vector<nlohmann::json>>) &&> done);
  void Adopt(const nlohmann::json& pool);

  const AzureProviderOptions options_;
  // `options_.arm_endpoint` without a trailing slash.
  std::string arm_base_;
  const std::shared_ptr<ArmClient> arm_;
  Clock* const clock_;

  absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Claim> claims_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 1;
  std::string node_resource_group_ ABSL_GUARDED_BY(mu_);
  struct ScaleSetList {
    absl::Duration requested;
    std::map<std::string, std::string> by_pool;
  };
  std::optional<ScaleSetList> scale_sets_ ABSL_GUARDED_BY(mu_);
  // Claims waiting for the next list; when the last list was sent; the timer of the next.
  std::vector<ScaleSetsDone> scale_set_waiters_ ABSL_GUARDED_BY(mu_);
  absl::Duration scale_sets_sent_ ABSL_GUARDED_BY(mu_) = -absl::InfiniteDuration();
  Clock::TimerId scale_set_timer_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<UsageSnapshot> usages_ ABSL_GUARDED_BY(mu_);
  bool usages_loading_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<UsagesDone> usage_waiters_ ABSL_GUARDED_BY(mu_);
  // The usages could not be read (refused, not found): said once, then creates proceed.
  bool quota_unreadable_logged_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kaito::provisioner::azure
