// The fake AKS cluster's agent pools and their long-running operations (§6.3 of the
// reference): the state machine, quota accounting and the VMs a pool has. Time is read,
// never waited for: every call takes the current time, and `Advance` applies the
// transitions that have fallen due, so a pool created at T with a create delay D is
// Succeeded at any call made after T+D. Not thread-safe: its owner (`FakeArmServer`)
// guards it with its one mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tools/fake-arm/arm_wire.h"
#include "tools/fake-arm/vm_size_table.h"

namespace kaito::fakearm {

// Whether `name` is a valid agent pool name: ^[a-z][a-z0-9]{0,11}$ (AKS's rule for
// Linux pools).
bool ValidPoolName(const std::string& name);

// Where the fake cluster lives; every id the fake renders is built from it.
struct ClusterIdentity {
  std::string subscription;
  std::string resource_group;
  std::string cluster;
  std::string location;

  // "MC_{rg}_{cluster}_{location}".
  std::string NodeResourceGroup() const;
  // "/subscriptions/{s}/resourcegroups/{rg}/providers/Microsoft.ContainerService/
  // managedClusters/{c}" (lower-case `resourcegroups`, as AKS writes ids).
  std::string ClusterId() const;
  // "/subscriptions/{s}/resourceGroups/mc_{rg}_{c}_{loc}" all lower-cased in the group
  // name, as Kubernetes providerIDs and VMSS VM ids carry it.
  std::string NodeResourceGroupId() const;
};

// The states a pool's `provisioningState` takes.
inline constexpr char kCreating[] = "Creating";
inline constexpr char kUpdating[] = "Updating";
inline constexpr char kDeleting[] = "Deleting";
inline constexpr char kSucceeded[] = "Succeeded";
inline constexpr char kFailed[] = "Failed";
inline constexpr char kCanceled[] = "Canceled";

enum class OperationKind { kCreate, kUpdate, kDelete };
enum class OperationStatus { kInProgress, kSucceeded, kFailed, kCanceled };
// "create" | "update" | "delete".
const char* KindName(OperationKind kind);
// "InProgress" | "Succeeded" | "Failed" | "Canceled" (the async-operation status values).
const char* StatusName(OperationStatus status);

// The error an operation ends with: `{"code","message","details"?}`.
struct OperationError {
  std::string code;
  std::string message;
  Json details = Json::array();

  Json ToJson() const;
};

// One PUT or DELETE of a pool, as its async-operation and operation-result URLs report it.
struct PoolOperation {
  std::string id;
  OperationKind kind = OperationKind::kCreate;
  std::string pool;
  absl::Time start_wall;
  absl::Duration due;  // Monotonic: when it ends by itself (unless `stuck`).
  absl::Duration delay;
  // Held InProgress until `Complete`, `Fail` or `Preempt` (the stick_in_progress fault).
  bool stuck = false;
  // The end it comes to when due: success when empty.
  std::optional<OperationError> planned_failure;
  OperationStatus status = OperationStatus::kInProgress;
  absl::Time end_wall;
  std::optional<OperationError> error;  // Set when Failed or Canceled.
};

struct AgentPool {
  std::string name;
  Json properties = Json::object();  // As the last PUT sent them (`count` 0 after a failed create).
  Json tags;                         // Top-level tags of the last PUT; null when none.
  std::string state = kSucceeded;    // provisioningState
  int vms = 0;                       // VMs that exist (instances 0..vms-1).
  absl::Duration created;            // Monotonic.
  std::string op_id;                 // The latest operation; empty for a seeded pool.

  int Count() const;
  std::string VmSize() const;
};

// The timings and policies of the moment (the fake's config), read by each call.
struct PoolPolicy {
  absl::Duration create_delay = absl::Seconds(2);
  absl::Duration update_delay = absl::Seconds(1);
  absl::Duration delete_delay = absl::Seconds(1);
  std::string quota_mode = "sync";         // sync | async | off
  std::map<std::string, int64_t> quotas;   // lower-cased family or "cores" -> vCPU limit
  bool delete_creating_conflicts = false;  // delete_creating "conflict" (else "preempt")

  int64_t QuotaLimit(const std::string& family) const;  // 1000 when unset.
};

// Faults that shape an accepted operation (the lro_fail and stick_in_progress actions).
struct OperationFaults {
  std::optional<OperationError> fail;
  bool stick = false;
};

// Wall and monotonic time of one call.
struct Moment {
  absl::Time wall;
  absl::Duration mono;
};

class AgentPoolModel {
 public:
  // `new_id` makes operation ids.
  AgentPoolModel(ClusterIdentity identity, const VmSizeTable* sizes,
                 absl::AnyInvocable<std::string()> new_id);

  // Back to the seed: the System pool `nodepool1` (Standard_D2s_v3, one VM, Succeeded), no
  // operations.
  void Reset(Moment now);
  // Ends every operation whose time has come, oldest due first.
  void Advance(Moment now);

  struct PutResult {
    int http_status = 0;  // 201 created, 200 updated, else the error's
    std::optional<ArmError> error;
    AgentPool pool;
    PoolOperation op;
  };
  // A validated PUT (the caller checked name and properties): create or update, or 409
  // while an operation is in progress or (quota_mode sync) over quota.
  PutResult Put(const std::string& name, Json properties, Json tags, const OperationFaults& faults,
                const PoolPolicy& policy, Moment now);

  struct DeleteResult {
    enum Outcome { kAccepted, kAbsent, kRejected } outcome = kAbsent;
    std::optional<ArmError> error;  // For kRejected.
    PoolOperation op;               // For kAccepted.
  };
  DeleteResult Delete(const std::string& name, const OperationFaults& faults,
                      const PoolPolicy& policy, Moment now);

  // By name, case-insensitively.
  std::optional<AgentPool> Find(const std::string& name) const;
  // Every pool, by name.
  std::vector<AgentPool> Pools() const;
  std::optional<PoolOperation> FindOperation(const std::string& id) const;

  // The control API. A pool put in place whole (no validation beyond what the caller did):
  // a terminal state keeps `properties` as given; Creating/Updating/Deleting start an
  // operation of that kind with the policy's delay. Replaces a pool of the same name.
  absl::Status Seed(const std::string& name, Json properties, Json tags, const std::string& state,
                    const PoolPolicy& policy, Moment now);
  // Ends the pool's operation in progress now: Succeeded, Failed with `error`, or Canceled
  // (AKSOperationPreempted). NotFound without the pool, FailedPrecondition when none is in
  // progress.
  absl::Status Complete(const std::string& name, Moment now);
  absl::Status Fail(const std::string& name, OperationError error, Moment now);
  absl::Status Preempt(const std::string& name, Moment now);

  // vCPUs in use in `family` (lower-case compared), and in all families: count × vCPUs of
  // every pool that is not Failed or Canceled (a pool being created or scaled counts with
  // its new count).
  int64_t FamilyUsage(const std::string& family) const;
  int64_t TotalUsage() const;

  // The pool as ARM's GET returns it (§6.3): id, name, type, properties with the read-only
  // ones added, tags.
  Json PoolResource(const AgentPool& pool) const;
  // "aks-{pool}-{digits}-vmss".
  static std::string VmssName(const std::string& pool);
  // Whether the pool's VMs exist for the Compute API: Succeeded, Updating or Deleting with
  // at least one VM.
  static bool HasVms(const AgentPool& pool);

  const ClusterIdentity& identity() const { return identity_; }

 private:
  AgentPool* Lookup(const std::string& name);
  PoolOperation& StartOperation(OperationKind kind, const std::string& pool, absl::Duration delay,
                                const OperationFaults& faults, Moment now);
  // Ends `op` with `status` at `end_wall` and applies the end to its pool when the pool is
  // still the op's (a later operation may have taken it over).
  void Finish(PoolOperation& op, OperationStatus status, std::optional<OperationError> error,
              absl::Time end_wall);
  // The pool's operation when it is in progress, else null.
  PoolOperation* InProgress(const AgentPool& pool);
  // Ends the named pool's running operation (Complete, Fail, Preempt).
  absl::Status EndRunning(const std::string& name, OperationStatus status,
                          std::optional<OperationError> error, Moment now);
  std::optional<ArmError> QuotaCheck(const AgentPool* existing, const Json& properties,
                                     const PoolPolicy& policy) const;
  int64_t VcpusOf(const AgentPool& pool) const;
  void ForgetOldOperations();

  const ClusterIdentity identity_;
  const VmSizeTable* const sizes_;
  absl::AnyInvocable<std::string()> new_id_;
  std::map<std::string, AgentPool> pools_;           // lower-cased name -> pool
  std::map<std::string, PoolOperation> operations_;  // id -> operation
  std::deque<std::string> finished_order_;           // ids of ended operations, oldest first
};

}  // namespace kaito::fakearm
