#include "tools/fake-arm/agent_pool_model.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kaito::fakearm {
namespace {

constexpr char kKubernetesVersion[] = "1.29.2";
// Ended operations kept for late polls; older ones are forgotten (their polls get 404).
constexpr size_t kMaxFinishedOperations = 10000;

std::string Lower(const std::string& s) { return absl::AsciiStrToLower(s); }

bool InProgressState(const std::string& state) {
  return state == kCreating || state == kUpdating || state == kDeleting;
}

// The verb AKS names an operation in progress with in its 409 text.
const char* StateVerb(const std::string& state) {
  if (state == kCreating) return "create";
  if (state == kUpdating) return "update";
  return "delete";
}

ArmError InProgressConflict(const std::string& state) {
  return ArmError{409, "OperationNotAllowed",
                  absl::StrCat("Operation is not allowed because there's an in progress ",
                               StateVerb(state), " node pool operation")};
}

}  // namespace

bool ValidPoolName(const std::string& name) {
  if (name.empty() || name.size() > 12 || !absl::ascii_islower(name[0])) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
}

std::string ClusterIdentity::NodeResourceGroup() const {
  return absl::StrCat("MC_", resource_group, "_", cluster, "_", location);
}

std::string ClusterIdentity::ClusterId() const {
  return absl::StrCat("/subscriptions/", subscription, "/resourcegroups/", resource_group,
                      "/providers/Microsoft.ContainerService/managedClusters/", cluster);
}

std::string ClusterIdentity::NodeResourceGroupId() const {
  return absl::StrCat("/subscriptions/", subscription, "/resourceGroups/",
                      Lower(NodeResourceGroup()));
}

const char* KindName(OperationKind kind) {
  switch (kind) {
    case OperationKind::kCreate:
      return "create";
    case OperationKind::kUpdate:
      return "update";
    case OperationKind::kDelete:
      return "delete";
  }
  return "unknown";
}

const char* StatusName(OperationStatus status) {
  switch (status) {
    case OperationStatus::kInProgress:
      return "InProgress";
    case OperationStatus::kSucceeded:
      return "Succeeded";
    case OperationStatus::kFailed:
      return "Failed";
    case OperationStatus::kCanceled:
      return "Canceled";
  }
  return "Unknown";
}

Json OperationError::ToJson() const {
  Json out = {{"code", code}, {"message", message}};
  if (details.is_array() && !details.empty()) out["details"] = details;
  return out;
}

int AgentPool::Count() const {
  auto it = properties.find("count");
  if (it == properties.end() || !it->is_number_integer()) return 1;
  const int64_t count = it->get<int64_t>();
  return static_cast<int>(std::clamp<int64_t>(count, 0, 1000));
}

std::string AgentPool::VmSize() const {
  auto it = properties.find("vmSize");
  return it != properties.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t PoolPolicy::QuotaLimit(const std::string& family) const {
  auto it = quotas.find(Lower(family));
  return it == quotas.end() ? 1000 : it->second;
}

AgentPoolModel::AgentPoolModel(ClusterIdentity identity, const VmSizeTable* sizes,
                               absl::AnyInvocable<std::string()> new_id)
    : identity_(std::move(identity)), sizes_(sizes), new_id_(std::move(new_id)) {}

void AgentPoolModel::Reset(Moment now) {
  pools_.clear();
  operations_.clear();
  finished_order_.clear();
  AgentPool seed;
  seed.name = "nodepool1";
  seed.properties = {{"count", 1},
                     {"vmSize", "Standard_D2s_v3"},
                     {"type", "VirtualMachineScaleSets"},
                     {"osType", "Linux"},
                     {"osSKU", "Ubuntu"},
                     {"osDiskSizeGB", 128},
                     {"mode", "System"},
                     {"maxPods", 110},
                     {"orchestratorVersion", kKubernetesVersion}};
  seed.state = kSucceeded;
  seed.vms = 1;
  seed.created = now.mono;
  pools_.emplace(seed.name, std::move(seed));
}

void AgentPoolModel::Advance(Moment now) {
  std::vector<PoolOperation*> due;
  for (auto& [id, op] : operations_) {
    if (op.status == OperationStatus::kInProgress && !op.stuck && op.due <= now.mono) {
      due.push_back(&op);
    }
  }
  std::sort(due.begin(), due.end(),
            [](const PoolOperation* a, const PoolOperation* b) { return a->due < b->due; });
  for (PoolOperation* op : due) {
    std::optional<OperationError> failure = op->planned_failure;
    const OperationStatus status =
        failure.has_value() ? OperationStatus::kFailed : OperationStatus::kSucceeded;
    Finish(*op, status, std::move(failure), op->start_wall + op->delay);
  }
  ForgetOldOperations();
}

AgentPool* AgentPoolModel::Lookup(const std::string& name) {
  auto it = pools_.find(Lower(name));
  return it == pools_.end() ? nullptr : &it->second;
}

std::optional<AgentPool> AgentPoolModel::Find(const std::string& name) const {
  auto it = pools_.find(Lower(name));
  if (it == pools_.end()) return std::nullopt;
  return it->second;
}

std::vector<AgentPool> AgentPoolModel::Pools() const {
  std::vector<AgentPool> out;
  out.reserve(pools_.size());
  for (const auto& [key, pool] : pools_) out.push_back(pool);
  return out;
}

std::optional<PoolOperation> AgentPoolModel::FindOperation(const std::string& id) const {
  auto it = operations_.find(Lower(id));
  if (it == operations_.end()) return std::nullopt;
  return it->second;
}

PoolOperation& AgentPoolModel::StartOperation(OperationKind kind, const std::string& pool,
                                              absl::Duration delay, const OperationFaults& faults,
                                              Moment now) {
  PoolOperation op;
  op.id = Lower(new_id_());
  op.kind = kind;
  op.pool = pool;
  op.start_wall = now.wall;
  op.delay = delay;
  op.due = now.mono + delay;
  op.stuck = faults.stick;
  op.planned_failure = faults.fail;
  auto [it, inserted] = operations_.emplace(op.id, std::move(op));
  return it->second;
}

PoolOperation* AgentPoolModel::InProgress(const AgentPool& pool) {
  if (pool.op_id.empty()) return nullptr;
  auto it = operations_.find(pool.op_id);
  if (it == operations_.end() || it->second.status != OperationStatus::kInProgress) {
    return nullptr;
  }
  return &it->second;
}

void AgentPoolModel::Finish(PoolOperation& op, OperationStatus status,
                            std::optional<OperationError> error, absl::Time end_wall) {
  op.status = status;
  op.error = std::move(error);
  op.end_wall = end_wall;
  finished_order_.push_back(op.id);
  auto it = pools_.find(Lower(op.pool));
  if (it == pools_.end() || it->second.op_id != op.id) return;
  AgentPool& pool = it->second;
  switch (op.kind) {
    case OperationKind::kCreate:
      if (status == OperationStatus::kSucceeded) {
        pool.state = kSucceeded;
        pool.vms = pool.Count();
      } else {
        // A create that did not succeed leaves the pool with no instance.
        pool.state = status == OperationStatus::kFailed ? kFailed : kCanceled;
        pool.properties["count"] = 0;
        pool.vms = 0;
      }
      break;
    case OperationKind::kUpdate:
      if (status == OperationStatus::kSucceeded) {
        pool.state = kSucceeded;
        pool.vms = pool.Count();
      } else {
        pool.state = status == OperationStatus::kFailed ? kFailed : kCanceled;
      }
      break;
    case OperationKind::kDelete:
      if (status == OperationStatus::kSucceeded) {
        pools_.erase(it);
      } else {
        pool.state = status == OperationStatus::kFailed ? kFailed : kCanceled;
      }
      break;
  }
}

void AgentPoolModel::ForgetOldOperations() {
  while (finished_order_.size() > kMaxFinishedOperations) {
    operations_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

int64_t AgentPoolModel::VcpusOf(const AgentPool& pool) const {
  if (pool.state == kFailed || pool.state == kCanceled) return 0;
  return int64_t{pool.Count()} * sizes_->Facts(pool.VmSize()).vcpus;
}

int64_t AgentPoolModel::FamilyUsage(const std::string& family) const {
  int64_t used = 0;
  for (const auto& [key, pool] : pools_) {
    if (absl::EqualsIgnoreCase(sizes_->Facts(pool.VmSize()).family, family)) {
      used += VcpusOf(pool);
    }
  }
  return used;
}

int64_t AgentPoolModel::TotalUsage() const {
  int64_t used = 0;
  for (const auto& [key, pool] : pools_) used += VcpusOf(pool);
  return used;
}

std::optional<ArmError> AgentPoolModel::QuotaCheck(const AgentPool* existing,
                                                   const Json& properties,
                                                   const PoolPolicy& policy) const {
  if (policy.quota_mode == "off") return std::nullopt;
  AgentPool wanted;
  wanted.properties = properties;
  wanted.state = kCreating;
  const provisioner::VmSizeFacts facts = sizes_->Facts(wanted.VmSize());
  const int64_t new_vcpus = VcpusOf(wanted);
  const int64_t old_vcpus = existing != nullptr ? VcpusOf(*existing) : 0;
  const bool same_family =
      existing != nullptr &&
      absl::EqualsIgnoreCase(sizes_->Facts(existing->VmSize()).family, facts.family);

  auto exceeded = [&](const std::string& what, int64_t limit, int64_t usage, int64_t required,
                      const char* doc) {
    return ArmError{
        409, "OperationNotAllowed",
        absl::StrCat("Operation could not be completed as it results in exceeding approved ", what,
                     " quota. Additional details - Deployment Model: Resource Manager, Location: ",
                     identity_.location, ", Current Limit: ", limit, ", Current Usage: ", usage,
                     ", Additional Required: ", required,
                     ", (Minimum) New Limit Required: ", usage + required,
                     ". Submit a request for Quota increase at "
                     "https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/"
                     "UsageAndQuota.ReactView by specifying parameters listed in the 'Details' "
                     "section for deployment to succeed. Please read more about quota limits at ",
                     doc)};
  };

  const int64_t family_required = new_vcpus - (same_family ? old_vcpus : 0);
  const int64_t family_usage = FamilyUsage(facts.family);
  const int64_t family_limit = policy.QuotaLimit(facts.family);
  if (family_required > 0 && family_usage + family_required > family_limit) {
    return exceeded(facts.family + " Cores", family_limit, family_usage, family_required,
                    "https://docs.microsoft.com/en-us/azure/azure-supportability/"
                    "per-vm-quota-requests");
  }
  const int64_t total_required = new_vcpus - old_vcpus;
  const int64_t total_usage = TotalUsage();
  const int64_t total_limit = policy.QuotaLimit("cores");
  if (total_required > 0 && total_usage + total_required > total_limit) {
    return exceeded("Total Regional Cores", total_limit, total_usage, total_required,
                    "https://docs.microsoft.com/en-us/azure/azure-supportability/"
                    "regional-quota-requests");
  }
  return std::nullopt;
}

AgentPoolModel::PutResult AgentPoolModel::Put(const std::string& name, Json properties, Json tags,
                                              const OperationFaults& faults,
                                              const PoolPolicy& policy, Moment now) {
  PutResult result;
  AgentPool* existing = Lookup(name);
  if (existing != nullptr && InProgressState(existing->state)) {
    result.error = InProgressConflict(existing->state);
    result.http_status = 409;
    return result;
  }
  OperationFaults effective = faults;
  if (std::optional<ArmError> quota = QuotaCheck(existing, properties, policy)) {
    if (policy.quota_mode != "async") {
      result.http_status = quota->http_status;
      result.error = std::move(quota);
      return result;
    }
    effective.fail = OperationError{"QuotaExceeded", quota->message};
  }
  if (existing == nullptr) {
    AgentPool pool;
    pool.name = name;
    pool.properties = std::move(properties);
    pool.tags = std::move(tags);
    pool.state = kCreating;
    pool.created = now.mono;
    PoolOperation& op =
        StartOperation(OperationKind::kCreate, name, policy.create_delay, effective, now);
    pool.op_id = op.id;
    result.op = op;
    result.http_status = 201;
    existing = &pools_.emplace(Lower(name), std::move(pool)).first->second;
  } else {
    existing->properties = std::move(properties);
    existing->tags = std::move(tags);
    existing->state = kUpdating;
    PoolOperation& op =
        StartOperation(OperationKind::kUpdate, existing->name, policy.update_delay, effective, now);
    existing->op_id = op.id;
    result.op = op;
    result.http_status = 200;
  }
  result.pool = *existing;
  return result;
}

AgentPoolModel::DeleteResult AgentPoolModel::Delete(const std::string& name,
                                                    const OperationFaults& faults,
                                                    const PoolPolicy& policy, Moment now) {
  DeleteResult result;
  AgentPool* pool = Lookup(name);
  if (pool == nullptr) {
    result.outcome = DeleteResult::kAbsent;
    return result;
  }
  PoolOperation* running = InProgress(*pool);
  if (pool->state == kDeleting && running != nullptr) {
    result.outcome = DeleteResult::kAccepted;
    result.op = *running;
    return result;
  }
  if (pool->state == kCreating && policy.delete_creating_conflicts) {
    result.outcome = DeleteResult::kRejected;
    result.error = InProgressConflict(kCreating);
    return result;
  }
  if (running != nullptr) {
    Finish(*running, OperationStatus::kCanceled,
           OperationError{"AKSOperationPreemptedByDelete",
                          absl::StrCat("The ", KindName(running->kind), " operation of agent pool ",
                                       pool->name, " was preempted by a delete operation.")},
           now.wall);
  }
  pool->state = kDeleting;
  PoolOperation& op =
      StartOperation(OperationKind::kDelete, pool->name, policy.delete_delay, faults, now);
  pool->op_id = op.id;
  result.outcome = DeleteResult::kAccepted;
  result.op = op;
  return result;
}

absl::Status AgentPoolModel::Seed(const std::string& name, Json properties, Json tags,
                                  const std::string& state, const PoolPolicy& policy, Moment now) {
  static const char* const kStates[] = {kCreating,  kUpdating, kDeleting,
                                        kSucceeded, kFailed,   kCanceled};
  if (std::find(std::begin(kStates), std::end(kStates), state) == std::end(kStates)) {
    return absl::InvalidArgumentError(
        absl::StrCat("provisioningState \"", state,
                     "\" is not one of Creating, Updating, Deleting, Succeeded, Failed, "
                     "Canceled"));
  }
  if (AgentPool* old = Lookup(name)) {
    if (PoolOperation* running = InProgress(*old)) {
      Finish(*running, OperationStatus::kCanceled,
             OperationError{"AKSOperationPreempted", "The pool was replaced by the fake's seed."},
             now.wall);
    }
    pools_.erase(Lower(name));
  }
  AgentPool pool;
  pool.name = name;
  pool.properties = std::move(properties);
  pool.tags = std::move(tags);
  pool.state = state;
  pool.created = now.mono;
  pool.vms = state == kSucceeded || state == kUpdating || state == kDeleting ? pool.Count() : 0;
  if (InProgressState(state)) {
    const OperationKind kind = state == kCreating   ? OperationKind::kCreate
                               : state == kUpdating ? OperationKind::kUpdate
                                                    : OperationKind::kDelete;
    const absl::Duration delay = state == kCreating   ? policy.create_delay
                                 : state == kUpdating ? policy.update_delay
                                                      : policy.delete_delay;
    pool.op_id = StartOperation(kind, name, delay, OperationFaults{}, now).id;
  }
  pools_.emplace(Lower(name), std::move(pool));
  return absl::OkStatus();
}

absl::Status AgentPoolModel::EndRunning(const std::string& name, OperationStatus status,
                                        std::optional<OperationError> error, Moment now) {
  AgentPool* pool = Lookup(name);
  if (pool == nullptr) return absl::NotFoundError("Agent Pool not found: " + name);
  PoolOperation* running = InProgress(*pool);
  if (running == nullptr) {
    return absl::FailedPreconditionError("agent pool " + name + " has no operation in progress");
  }
  if (status == OperationStatus::kCanceled && !error.has_value()) {
    error =
        OperationError{"AKSOperationPreempted",
                       absl::StrCat("The ", KindName(running->kind), " operation of agent pool ",
                                    name, " was preempted by another operation.")};
  }
  Finish(*running, status, std::move(error), now.wall);
  return absl::OkStatus();
}

absl::Status AgentPoolModel::Complete(const std::string& name, Moment now) {
  return EndRunning(name, OperationStatus::kSucceeded, std::nullopt, now);
}

absl::Status AgentPoolModel::Fail(const std::string& name, OperationError error, Moment now) {
  return EndRunning(name, OperationStatus::kFailed, std::move(error), now);
}

absl::Status AgentPoolModel::Preempt(const std::string& name, Moment now) {
  return EndRunning(name, OperationStatus::kCanceled, std::nullopt, now);
}

Json AgentPoolModel::PoolResource(const AgentPool& pool) const {
  Json props = pool.properties;
  props["count"] = pool.Count();
  if (!props.contains("type")) props["type"] = "VirtualMachineScaleSets";
  if (!props.contains("osType")) props["osType"] = "Linux";
  if (!props.contains("mode")) props["mode"] = "User";
  if (!props.contains("maxPods")) props["maxPods"] = 110;
  if (!props.contains("orchestratorVersion")) props["orchestratorVersion"] = kKubernetesVersion;
  props["currentOrchestratorVersion"] = kKubernetesVersion;
  const auto sku = props.find("osSKU");
  const bool azure_linux = sku != props.end() && sku->is_string() &&
                           absl::EqualsIgnoreCase(sku->get<std::string>(), "AzureLinux");
  props["nodeImageVersion"] =
      azure_linux ? "AKSAzureLinux-V2gen2-202401.09.0" : "AKSUbuntu-2204gen2containerd-202401.09.0";
  props["provisioningState"] = pool.state;
  props["powerState"] = {{"code", "Running"}};
  Json out = {{"id", identity_.ClusterId() + "/agentPools/" + pool.name},
              {"name", pool.name},
              {"type", "Microsoft.ContainerService/managedClusters/agentPools"},
              {"properties", std::move(props)}};
  if (!pool.tags.is_null()) out["tags"] = pool.tags;
  return out;
}

std::string AgentPoolModel::VmssName(const std::string& pool) {
  return absl::StrCat("aks-", pool, "-", PoolHashDigits(pool), "-vmss");
}

bool AgentPoolModel::HasVms(const AgentPool& pool) {
  return pool.vms >= 1 &&
         (pool.state == kSucceeded || pool.state == kUpdating || pool.state == kDeleting);
}

}  // namespace kaito::fakearm
