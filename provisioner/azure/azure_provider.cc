#include "provisioner/azure/azure_provider.h"

#include <spdlog/spdlog.h>

#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "provisioner/azure/arm_error.h"
#include "provisioner/azure/arm_json.h"
#include "provisioner/azure/vm_size.h"

namespace kaito::provisioner::azure {
namespace {

constexpr char kCreating[] = "Creating";
constexpr char kRunning[] = "Running";
constexpr char kFailed[] = "Failed";
constexpr char kDeleting[] = "Deleting";
// Scale-set lists are sent at most this often (a batch of claims shares one).
constexpr absl::Duration kScaleSetCoalesce = absl::Milliseconds(20);

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

// The pool's `kaito.sh/creation-timestamp` label into `node` (left unset when unreadable).
void SetCreatedFromLabel(const nlohmann::json& pool, v1::ProvisionedNode* node);

// The message of a failed request: ARM's error, or the transport's.
ArmError ErrorOf(const absl::StatusOr<http::Response>& response) {
  if (response.ok()) return ParseArmError(*response);
  ArmError error;
  error.code =
      absl::IsUnauthenticated(response.status()) ? "AuthenticationFailed" : "ConnectionFailed";
  error.message = std::string(response.status().message());
  return error;
}

void SetCreatedFromLabel(const nlohmann::json& pool, v1::ProvisionedNode* node) {
  const std::string label =
      JsonString(JsonMember(JsonMember(pool, "properties"), "nodeLabels"), kLabelCreationTimestamp);
  absl::Time created;
  std::string error;
  if (!label.empty() &&
      absl::ParseTime("%Y-%m-%dT%H-%M-%SZ", label, absl::UTCTimeZone(), &created, &error)) {
    SetTime(created, node->mutable_created_time());
  }
}

// What the log lines about an adopted pool are about: its claim, and the workspace its node
// labels name (PoolBody copies the claim's labels there).
LogSubject PoolSubject(const nlohmann::json& pool, const std::string& name) {
  const nlohmann::json& labels = JsonMember(JsonMember(pool, "properties"), "nodeLabels");
  std::map<std::string, std::string> workspace = {
      {kWorkspaceNamespaceLabel, JsonString(labels, kWorkspaceNamespaceLabel)},
      {kWorkspaceLabel, JsonString(labels, kWorkspaceLabel)}};
  return SubjectFromLabels(workspace, "nodeclaim/" + name);
}

}  // namespace

bool IsValidPoolName(const std::string& name) {
  static const std::regex kPoolName("^[a-z][a-z0-9]{0,11}$");
  return std::regex_match(name, kPoolName);
}

nlohmann::json PoolBody(const v1::CreateNodeRequest& request, absl::Time now) {
  const v1::NodeClaimSpec& spec = request.spec();
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [key, value] : spec.labels()) labels[key] = value;
  labels[kLabelNodeClaim] = request.claim_name();
  labels["karpenter.sh/nodepool"] = "kaito";
  labels["kaito.sh/machine-type"] =
      absl::StrContains(spec.instance_type(), "Standard_N") ? "gpu" : "cpu";
  labels[kLabelCreationTimestamp] =
      absl::FormatTime("%Y-%m-%dT%H-%M-%SZ", now, absl::UTCTimeZone());
  nlohmann::json taints = nlohmann::json::array();
  for (const v1::Taint& taint : spec.taints()) {
    taints.push_back(absl::StrCat(taint.key(), "=", taint.value(), ":", taint.effect()));
  }
  nlohmann::json properties = {
      {"count", 1},
      {"vmSize", spec.instance_type()},
      {"type", "VirtualMachineScaleSets"},
      {"mode", "User"},
      {"osType", "Linux"},
      {"osSKU",
       absl::EqualsIgnoreCase(spec.image_family(), "AzureLinux") ? "AzureLinux" : "Ubuntu"},
      {"nodeLabels", labels},
      {"nodeTaints", taints},
      {"tags", {{kTagManagedBy, kTagManagedByValue}, {"kaito-nodeclaim", request.claim_name()}}}};
  if (spec.capacity_type() == "spot") {
    // Evicted spot VMs are deleted (a lost node, replaced by the control plane); pay at
    // most the on-demand price.
    properties["scaleSetPriority"] = "Spot";
    properties["scaleSetEvictionPolicy"] = "Delete";
    properties["spotMaxPrice"] = -1;
  }
  if (spec.disk_size_gib() > 0) {
    // AKS accepts 30..2048 GB OS disks.
    properties["osDiskSizeGB"] = std::clamp<int64_t>(spec.disk_size_gib(), 30, 2048);
  }
  return {{"properties", properties}};
}

bool IsOwnedPool(const nlohmann::json& pool, const std::string& name) {
  const nlohmann::json& properties = JsonMember(pool, "properties");
  return JsonString(JsonMember(properties, "nodeLabels"), kLabelNodeClaim) == name &&
         JsonString(JsonMember(properties, "tags"), kTagManagedBy) == kTagManagedByValue;
}

std::shared_ptr<AzureProvider> AzureProvider::Create(AzureProviderOptions options,
                                                     std::shared_ptr<ArmClient> arm, Clock* clock) {
  return std::shared_ptr<AzureProvider>(
      new AzureProvider(std::move(options), std::move(arm), clock));
}

AzureProvider::AzureProvider(AzureProviderOptions options, std::shared_ptr<ArmClient> arm,
                             Clock* clock)
    : options_(std::move(options)), arm_(std::move(arm)), clock_(clock) {
  arm_base_ = options_.arm_endpoint;
  while (!arm_base_.empty() && arm_base_.back() == '/') arm_base_.pop_back();
}

std::string AzureProvider::ClusterUrl() const {
  return absl::StrCat(arm_base_, "/subscriptions/", options_.subscription_id, "/resourceGroups/",
                      options_.resource_group,
                      "/providers/Microsoft.ContainerService/managedClusters/",
                      options_.cluster_name);
}

std::string AzureProvider::ScaleSetsUrl(const std::string& node_resource_group) const {
  return absl::StrCat(arm_base_, "/subscriptions/", options_.subscription_id, "/resourceGroups/",
                      node_resource_group, "/providers/Microsoft.Compute/virtualMachineScaleSets");
}

std::string AzureProvider::PoolUrl(const std::string& name) const {
  return absl::StrCat(ClusterUrl(), "/agentPools/", name);
}

std::string AzureProvider::WithApiVersion(const std::string& url,
                                          const std::string& version) const {
  return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?", "api-version=", version);
}

AzureProvider::Claim* AzureProvider::CurrentLocked(const std::string& name, uint64_t generation) {
  if (stopped_) return nullptr;
  auto it = claims_.find(name);
  if (it == claims_.end() || it->second.generation != generation) return nullptr;
  return &it->second;
}

void AzureProvider::ScheduleLocked(const std::string& name, Claim& claim, absl::Duration delay,
                                   Step step) {
  if (stopped_) return;
  if (claim.step_timer != 0) clock_->Cancel(claim.step_timer);
  const uint64_t generation = claim.generation;
  claim.step_timer = clock_->RunAfter(delay, [self = shared_from_this(), name, generation, step] {
    {
      absl::MutexLock lock(&self->mu_);
      Claim* claim = self->CurrentLocked(name, generation);
      if (claim == nullptr) return;
      claim->step_timer = 0;
    }
    ((*self).*step)(name, generation);
  });
}

void AzureProvider::CancelTimersLocked(Claim& claim) {
  if (claim.step_timer != 0) clock_->Cancel(claim.step_timer);
  if (claim.deadline_timer != 0) clock_->Cancel(claim.deadline_timer);
  claim.step_timer = claim.deadline_timer = 0;
}

absl::Duration AzureProvider::PollDelay(const http::Response& response) const {
  std::optional<absl::Duration> asked = RetryAfter(response, clock_->Now());
  const absl::Duration delay = asked ? *asked : options_.poll_interval;
  return std::max(options_.min_poll_interval, delay);
}

uint64_t AzureProvider::BeginAttemptLocked(const std::string& name, Claim& claim) {
  CancelTimersLocked(claim);
  claim.generation = next_generation_++;
  claim.node.Clear();
  claim.node.set_claim_name(name);
  claim.node.set_phase(kCreating);
  claim.node.set_instance_type(claim.request->spec().instance_type());
  claim.node.set_message("creating agent pool " + name);
  SetTime(clock_->Now(), claim.node.mutable_created_time());
  const uint64_t generation = claim.generation;
  if (!stopped_) {
    claim.deadline_timer =
        clock_->RunAfter(options_.create_timeout, [self = shared_from_this(), name, generation] {
          {
            absl::MutexLock lock(&self->mu_);
            Claim* claim = self->CurrentLocked(name, generation);
            if (claim == nullptr || claim->node.phase() != kCreating) return;
            claim->deadline_timer = 0;
          }
          self->Fail(name, generation, "CreateTimeout", true,
                     absl::StrCat("agent pool ", name, " was not running ",
                                  absl::FormatDuration(self->options_.create_timeout),
                                  " after its create began; it is deleted"),
                     /*delete_pool=*/true);
        });
  }
  return generation;
}

void AzureProvider::FailWith(const std::string& name, uint64_t generation, const ArmError& error,
                             bool delete_pool) {
  const ErrorClass cls = ClassifyArmError(error);
  Fail(name, generation, cls.reason, cls.retryable, error.Describe(), delete_pool);
}

void AzureProvider::Fail(const std::string& name, uint64_t generation, const std::string& reason,
                         bool retryable, const std::string& message, bool delete_pool) {
  LogSubject about;
  {
    absl::MutexLock lock(&mu_);
    Claim* claim = CurrentLocked(name, generation);
    if (claim == nullptr) return;
    CancelTimersLocked(*claim);
    // Requests of this attempt still in flight find the claim moved on.
    claim->generation = next_generation_++;
    claim->node.set_phase(kFailed);
    claim->node.set_error_code(reason);
    claim->node.set_retryable(retryable);
    claim->node.set_message(message);
    about = claim->about;
  }
  LogAbout(spdlog::level::warn, about, "create failed: {}: {}", reason, message);
  if (delete_pool) {
    // The pool of a failed create holds quota and costs money: it goes (only if ours).
    arm_->Send("GET", WithApiVersion(PoolUrl(name), options_.api_version), "",
               [self = shared_from_this(), name](absl::StatusOr<http::Response> response) {
                 if (!response.ok() || response->status != 200) return;
                 if (!IsOwnedPool(ParseJson(response->body), name)) return;
                 self->arm_->Send(
                     "DELETE",
                     self->WithApiVersion(self->PoolUrl(name), self->options_.api_version), "",
                     [name](absl::StatusOr<http::Response> deleted) {
                       if (!deleted.ok() || deleted->status >= 300) {
                         spdlog::warn(
                             "node claim {}: cannot delete the pool of a "
                             "failed create: {}",
                             name, ErrorOf(deleted).Describe());
                       }
                     });
               });
  }
}

void AzureProvider::CreateNode(const v1::CreateNodeRequest& request, NodeDone done) {
  const std::string& name = request.claim_name();
  if (!IsValidPoolName(name)) {
    return std::move(done)(absl::InvalidArgumentError(
        absl::StrCat("claim_name: \"", name,
                     "\" cannot name an AKS agent pool: it must match ^[a-z][a-z0-9]{0,11}$")));
  }
  if (request.spec().instance_type().empty()) {
    return std::move(done)(absl::InvalidArgumentError("spec.instance_type: Required value"));
  }
  v1::ProvisionedNode node;
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return std::move(done)(absl::UnavailableError("the provisioner is stopping"));
    Claim& claim = claims_[name];
    if (claim.generation != 0 && claim.node.phase() != kFailed) {
      // Creating, Running or Deleting: report it as it is (idempotent by name).
      if (!claim.request) claim.request = request;
      node = claim.node;
    } else {
      claim.request = request;
      claim.about = SubjectFromLabels(request.spec().labels(), "nodeclaim/" + name);
      generation = BeginAttemptLocked(name, claim);
      node = claim.node;
    }
  }
  std::move(done)(std::move(node));
  if (generation != 0) LookUpPool(name, generation);
}

void AzureProvider::LookUpPool(const std::string& name, uint64_t generation) {
  arm_->Send(
      "GET", WithApiVersion(PoolUrl(name), options_.api_version), "",
      [self = shared_from_this(), name, generation](absl::StatusOr<http::Response> response) {
        if (response.ok() && response->status == 404) return self->CheckQuota(name, generation);
        if (!response.ok() || response->status != 200) {
          return self->FailWith(name, generation, ErrorOf(response), false);
        }
        const nlohmann::json pool = ParseJson(response->body);
        if (!IsOwnedPool(pool, name)) {
          return self->Fail(name, generation, "PoolNameConflict", false,
                            absl::StrCat("agent pool ", name,
                                         " exists and was not created by kaito-provisioner; it "
                                         "is left alone"),
                            false);
        }
        const std::string state = ResourceProvisioningState(pool);
        if (absl::EqualsIgnoreCase(state, "Deleting")) {
          // A previous attempt's pool is going: create once it is gone.
          absl::MutexLock lock(&self->mu_);
          if (Claim* claim = self->CurrentLocked(name, generation)) {
            claim->node.set_message("waiting for the previous agent pool " + name +
                                    " to be deleted");
            self->ScheduleLocked(name, *claim, self->options_.poll_interval,
                                 &AzureProvider::LookUpPool);
          }
          return;
        }
        if (ProvisioningState(state) == OperationState::kFailed) {
          // A failed pool is created again by a new PUT (ARM reconciles it).
          return self->PutPool(name, generation);
        }
        LogAbout(spdlog::level::info, self->About(name), "resuming agent pool {} ({})", name,
                 state);
        self->OnCreateProgress(name, generation, pool);
      });
}

absl::StatusOr<std::map<std::string, QuotaUsage>> ParseUsages(const std::string& body) {
  const nlohmann::json page = ParseJson(body);
  const nlohmann::json& value = JsonMember(page, "value");
  if (!value.is_array())
    return absl::InvalidArgumentError("the usages reply has no \"value\" array");
  std::map<std::string, QuotaUsage> out;
  for (const nlohmann::json& item : value) {
    const std::string name = JsonString(JsonMember(item, "name"), "value");
    const nlohmann::json& used = JsonMember(item, "currentValue");
    const nlohmann::json& limit = JsonMember(item, "limit");
    if (name.empty() || !used.is_number() || !limit.is_number()) continue;
    out[name] = QuotaUsage{used.get<int64_t>(), limit.get<int64_t>()};
  }
  return out;
}

void AzureProvider::WithUsages(UsagesDone done) {
  std::optional<UsageSnapshot> fresh;
  bool fetch = false;
  {
    absl::MutexLock lock(&mu_);
    if (usages_ && clock_->Monotonic() - usages_->taken < options_.quota_cache_ttl) {
      fresh = usages_;
    } else {
      usage_waiters_.push_back(std::move(done));
      fetch = !usages_loading_;
      usages_loading_ = true;
    }
  }
  if (fresh) return std::move(done)(*std::move(fresh));
  if (!fetch) return;
  const std::string url = WithApiVersion(
      absl::StrCat(arm_base_, "/subscriptions/", options_.subscription_id,
                   "/providers/Microsoft.Compute/locations/", options_.location, "/usages"),
      options_.compute_api_version);
  arm_->Send("GET", url, "", [self = shared_from_this()](absl::StatusOr<http::Response> response) {
    absl::StatusOr<UsageSnapshot> snapshot;
    if (!response.ok() || response->status != 200) {
      snapshot = absl::UnavailableError(ErrorOf(response).Describe());
    } else if (auto families = ParseUsages(response->body); !families.ok()) {
      snapshot = families.status();
    } else {
      snapshot = UsageSnapshot{*std::move(families), self->clock_->Monotonic()};
    }
    std::vector<UsagesDone> waiters;
    {
      absl::MutexLock lock(&self->mu_);
      self->usages_loading_ = false;
      if (snapshot.ok()) self->usages_ = *snapshot;
      waiters.swap(self->usage_waiters_);
    }
    for (UsagesDone& waiter : waiters) std::move(waiter)(snapshot);
  });
}

std::vector<AzureProvider::QuotaPool> AzureProvider::QuotaPoolsLocked(const UsageSnapshot& snapshot,
                                                                      const std::string& family,
                                                                      const std::string& except) {
  int64_t reserved_family = 0, reserved_total = 0;
  for (const auto& [other_name, other] : claims_) {
    if (other_name == except || other.node.phase() != kCreating || !other.request ||
        other.quota_held_since <= snapshot.taken) {
      continue;
    }
    const VmSizeFacts facts = AzureVmSizeFacts(other.request->spec().instance_type());
    reserved_total += facts.vcpus;
    if (facts.family == family) reserved_family += facts.vcpus;
  }
  std::vector<QuotaPool> pools;
  for (const auto& [name, reserved] : {std::pair<std::string, int64_t>{family, reserved_family},
                                       std::pair<std::string, int64_t>{"cores", reserved_total}}) {
    if (auto it = snapshot.families.find(name); it != snapshot.families.end()) {
      pools.push_back({name, it->second, reserved});
    }
  }
  return pools;
}

void AzureProvider::GetQuota(const v1::GetQuotaRequest& request, QuotaDone done) {
  const std::string vm_size = request.instance_type();
  const int nodes = std::max(1, request.nodes());
  v1::QuotaHeadroom headroom;
  headroom.set_instance_type(vm_size);
  headroom.set_nodes(nodes);
  const VmSizeFacts need = AzureVmSizeFacts(vm_size);
  headroom.set_vcpus_per_node(need.vcpus);
  headroom.set_family(need.family);
  if (!options_.quota_check || options_.location.empty()) {
    headroom.set_message(options_.location.empty()
                             ? "no --location: the compute usages are not read"
                             : "the quota check is off (--azure-quota-check=false)");
    return std::move(done)(std::move(headroom));
  }
  WithUsages([self = shared_from_this(), headroom = std::move(headroom), need,
              done = std::move(done)](absl::StatusOr<UsageSnapshot> snapshot) mutable {
    if (!snapshot.ok()) {
      headroom.set_message("cannot read the compute usages of " + self->options_.location + ": " +
                           std::string(snapshot.status().message()));
      return std::move(done)(std::move(headroom));
    }
    const int64_t need_vcpus = int64_t{need.vcpus} * headroom.nodes();
    bool fits = true;
    headroom.set_family_limit(-1);
    headroom.set_regional_limit(-1);
    {
      absl::MutexLock lock(&self->mu_);
      for (const QuotaPool& pool : self->QuotaPoolsLocked(*snapshot, need.family, "")) {
        const int64_t used = pool.usage.used + pool.reserved;
        fits = fits && used + need_vcpus <= pool.usage.limit;
        if (pool.name == need.family) {
          headroom.set_family_limit(pool.usage.limit);
          headroom.set_family_used(used);
        } else {
          headroom.set_regional_limit(pool.usage.limit);
          headroom.set_regional_used(used);
        }
      }
    }
    headroom.set_known(true);
    headroom.set_fits(fits);
    headroom.set_message(absl::StrCat("compute usages of ", self->options_.location));
    std::move(done)(std::move(headroom));
  });
}

void AzureProvider::CheckQuota(const std::string& name, uint64_t generation) {
  if (!options_.quota_check || options_.location.empty()) return PutPool(name, generation);
  WithUsages([self = shared_from_this(), name, generation](absl::StatusOr<UsageSnapshot> snapshot) {
    if (!snapshot.ok()) {
      {
        absl::MutexLock lock(&self->mu_);
        if (!self->quota_unreadable_logged_) {
          spdlog::warn(
              "azure: cannot read the compute usages of {} ({}): creates proceed "
              "without a quota check",
              self->options_.location, std::string(snapshot.status().message()));
        }
        self->quota_unreadable_logged_ = true;
      }
      return self->PutPool(name, generation);
    }
    std::string refusal;
    {
      absl::MutexLock lock(&self->mu_);
      Claim* claim = self->CurrentLocked(name, generation);
      if (claim == nullptr || !claim->request) return;
      const std::string& vm_size = claim->request->spec().instance_type();
      const VmSizeFacts need = AzureVmSizeFacts(vm_size);
      for (const QuotaPool& pool : self->QuotaPoolsLocked(*snapshot, need.family, name)) {
        const std::string& family = pool.name;
        const QuotaUsage& usage = pool.usage;
        const int64_t reserved = pool.reserved;
        if (usage.used + reserved + need.vcpus <= usage.limit) continue;
        refusal = absl::StrCat(
            "quota check before create: a ", vm_size, " node needs ", need.vcpus, " vCPUs of ",
            family == "cores" ? "the regional vCPU quota (cores)" : family, " in ",
            self->options_.location, ", which has ", usage.limit, " with ", usage.used, " in use",
            reserved > 0 ? absl::StrCat(" and ", reserved, " held by creates in flight") : "",
            "; raise the quota, or allow other instance types with "
            "kaito.sh/instance-type-fallback");
        break;
      }
      if (refusal.empty()) claim->quota_held_since = self->clock_->Monotonic();
    }
    if (!refusal.empty()) {
      return self->Fail(name, generation, "QuotaExceeded", false, refusal, false);
    }
    self->PutPool(name, generation);
  });
}

void AzureProvider::OnCreateProgress(const std::string& name, uint64_t generation,
                                     const nlohmann::json& pool) {
  const OperationState state = ProvisioningState(ResourceProvisioningState(pool));
  if (state == OperationState::kSucceeded) return ResolveVm(name, generation);
  absl::MutexLock lock(&mu_);
  Claim* claim = CurrentLocked(name, generation);
  if (claim == nullptr) return;
  // Poll the pool itself (the operation of another process, or of our previous life).
  claim->op = Operation{};
  claim->op.kind = PollerKind::kBody;
  claim->op.method = "PUT";
  claim->op.resource_url = claim->op.poll_url = WithApiVersion(PoolUrl(name), options_.api_version);
  ScheduleLocked(name, *claim, options_.poll_interval, &AzureProvider::PollCreate);
}

void AzureProvider::PutPool(const std::string& name, uint64_t generation) {
  std::string body;
  {
    absl::MutexLock lock(&mu_);
    Claim* claim = CurrentLocked(name, generation);
    if (claim == nullptr || !claim->request) return;
    body = PoolBody(*claim->request, clock_->Now()).dump();
  }
  const std::string url = WithApiVersion(PoolUrl(name), options_.api_version);
  arm_->Send(
      "PUT", url, std::move(body),
      [self = shared_from_this(), name, generation, url](absl::StatusOr<http::Response> response) {
        if (response.ok() && (response->status == 200 || response->status == 201)) {
          Operation op = StartOperation("PUT", url, *response);
          if (op.state == OperationState::kFailed) {
            return self->FailWith(name, generation, op.error, true);
          }
          if (op.state == OperationState::kSucceeded && op.kind == PollerKind::kBody) {
            return self->ResolveVm(name, generation);
          }
          absl::MutexLock lock(&self->mu_);
          Claim* claim = self->CurrentLocked(name, generation);
          if (claim == nullptr) return;
          claim->op = std::move(op);
          claim->quota_held_since = self->clock_->Monotonic();
          claim->node.set_message("agent pool " + name + " is being created");
          self->ScheduleLocked(name, *claim, self->PollDelay(*response),
                               &AzureProvider::PollCreate);
          return;
        }
        const ArmError error = ErrorOf(response);
        if (IsOperationInProgress(error)) {
          // Our own earlier create (a restart, a lost reply): follow the pool.
          return self->OnCreateProgress(name, generation,
                                        {{"properties", {{"provisioningState", kCreating}}}});
        }
        self->FailWith(name, generation, error, false);
      });
}

std::optional<std::string> AzureProvider::PollUrl(const std::string& name, uint64_t generation) {
  absl::MutexLock lock(&mu_);
  Claim* claim = CurrentLocked(name, generation);
  if (claim == nullptr) return std::nullopt;
  return claim->op.poll_url;
}

void AzureProvider::PollCreate(const std::string& name, uint64_t generation) {
  std::optional<std::string> url = PollUrl(name, generation);
  if (!url) return;
  arm_->Send(
      "GET", *url, "",
      [self = shared_from_this(), name, generation](absl::StatusOr<http::Response> response) {
        if (!response.ok()) {
          return self->FailWith(name, generation, ErrorOf(response), false);
        }
        Operation op;
        {
          absl::MutexLock lock(&self->mu_);
          Claim* claim = self->CurrentLocked(name, generation);
          if (claim == nullptr) return;
          ReadPollResponse(*response, &claim->op);
          op = claim->op;
          if (op.state == OperationState::kInProgress) {
            self->ScheduleLocked(name, *claim, self->PollDelay(*response),
                                 &AzureProvider::PollCreate);
            return;
          }
        }
        if (op.state == OperationState::kFailed) {
          return self->FailWith(name, generation, op.error, true);
        }
        if (op.kind == PollerKind::kBody) return self->ResolveVm(name, generation);
        self->FinalGet(name, generation);
      });
}

void AzureProvider::FinalGet(const std::string& name, uint64_t generation) {
  arm_->Send(
      "GET", WithApiVersion(PoolUrl(name), options_.api_version), "",
      [self = shared_from_this(), name, generation](absl::StatusOr<http::Response> response) {
        if (!response.ok() || response->status != 200) {
          return self->FailWith(name, generation, ErrorOf(response), false);
        }
        const nlohmann::json pool = ParseJson(response->body);
        const OperationState state = ProvisioningState(ResourceProvisioningState(pool));
        if (state == OperationState::kFailed) {
          return self->Fail(name, generation, "CloudError", true,
                            "agent pool " + name + " ended " + ResourceProvisioningState(pool),
                            true);
        }
        self->OnCreateProgress(name, generation, pool);
      });
}

void AzureProvider::WithNodeResourceGroup(
    absl::AnyInvocable<void(absl::StatusOr<std::string>) &&> done) {
  std::string known;
  {
    absl::MutexLock lock(&mu_);
    known = node_resource_group_;
  }
  if (!known.empty()) return std::move(done)(std::move(known));
  arm_->Send("GET", WithApiVersion(ClusterUrl(), options_.api_version), "",
             [self = shared_from_this(),
              done = std::move(done)](absl::StatusOr<http::Response> response) mutable {
               if (!response.ok() || response->status != 200) {
                 return std::move(done)(absl::UnavailableError("reading the cluster: " +
                                                               ErrorOf(response).Describe()));
               }
               std::string group = JsonString(JsonMember(ParseJson(response->body), "properties"),
                                              "nodeResourceGroup");
               if (group.empty()) {
                 return std::move(done)(
                     absl::UnavailableError("the cluster has no properties.nodeResourceGroup"));
               }
               {
                 absl::MutexLock lock(&self->mu_);
                 self->node_resource_group_ = group;
               }
               std::move(done)(std::move(group));
             });
}

void AzureProvider::WithScaleSets(absl::Duration requested_after, ScaleSetsDone done) {
  std::optional<std::map<std::string, std::string>> cached;
  bool send_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (scale_sets_ && scale_sets_->requested >= requested_after) {
      cached = scale_sets_->by_pool;
    } else {
      scale_set_waiters_.push_back(std::move(done));
      if (scale_set_timer_ == 0 && !stopped_) {
        const absl::Duration wait = scale_sets_sent_ + kScaleSetCoalesce - clock_->Monotonic();
        if (wait <= absl::ZeroDuration()) {
          send_now = true;
        } else {
          scale_set_timer_ = clock_->RunAfter(wait, [self = shared_from_this()] {
            {
              absl::MutexLock lock(&self->mu_);
              self->scale_set_timer_ = 0;
              if (self->stopped_) return;
            }
            self->FetchScaleSets();
          });
        }
      }
    }
  }
  if (cached) return std::move(done)(*std::move(cached));
  if (send_now) FetchScaleSets();
}

void AzureProvider::FetchScaleSets() {
  std::vector<ScaleSetsDone> waiters;
  absl::Duration requested;
  {
    absl::MutexLock lock(&mu_);
    waiters.swap(scale_set_waiters_);
    requested = scale_sets_sent_ = clock_->Monotonic();
  }
  if (waiters.empty()) return;
  auto finish = [self = shared_from_this(), requested,
                 waiters = std::make_shared<std::vector<ScaleSetsDone>>(std::move(waiters))](
                    absl::StatusOr<std::map<std::string, std::string>> by_pool) {
    if (by_pool.ok()) {
      absl::MutexLock lock(&self->mu_);
      if (!self->scale_sets_ || self->scale_sets_->requested < requested) {
        self->scale_sets_ = ScaleSetList{requested, *by_pool};
      }
    }
    for (ScaleSetsDone& waiter : *waiters) std::move(waiter)(by_pool);
  };
  WithNodeResourceGroup([self = shared_from_this(),
                         finish = std::move(finish)](absl::StatusOr<std::string> group) mutable {
    if (!group.ok()) return finish(group.status());
    const std::string url =
        self->WithApiVersion(self->ScaleSetsUrl(*group), self->options_.compute_api_version);
    self->ListAll(
        url, {},
        [finish = std::move(finish)](absl::StatusOr<std::vector<nlohmann::json>> sets) mutable {
          if (!sets.ok()) return finish(sets.status());
          std::map<std::string, std::string> by_pool;
          for (const nlohmann::json& set : *sets) {
            const std::string pool = JsonString(JsonMember(set, "tags"), "aks-managed-poolName");
            if (!pool.empty()) by_pool[pool] = JsonString(set, "name");
          }
          finish(std::move(by_pool));
        });
  });
}

void AzureProvider::ResolveVm(const std::string& name, uint64_t generation) {
  auto retry_later = [self = shared_from_this(), name, generation](const std::string& why) {
    absl::MutexLock lock(&self->mu_);
    Claim* claim = self->CurrentLocked(name, generation);
    if (claim == nullptr) return;
    claim->node.set_message("agent pool " + name + " succeeded; " + why);
    self->ScheduleLocked(name, *claim, self->options_.vm_lookup_interval,
                         &AzureProvider::ResolveVm);
  };
  WithScaleSets(
      clock_->Monotonic(), [self = shared_from_this(), name, generation, retry_later](
                               absl::StatusOr<std::map<std::string, std::string>> sets) mutable {
        if (!sets.ok()) return retry_later(std::string(sets.status().message()));
        std::string group;
        {
          absl::MutexLock lock(&self->mu_);
          group = self->node_resource_group_;
        }
        const std::string scale_sets = self->ScaleSetsUrl(group);
        auto it = sets->find(name);
        const std::string vmss = it == sets->end() ? "" : it->second;
        if (vmss.empty()) return retry_later("waiting for its scale set");
        self->ListAll(
            self->WithApiVersion(absl::StrCat(scale_sets, "/", vmss, "/virtualMachines"),
                                 self->options_.compute_api_version),
            {},
            [self, name, generation,
             retry_later](absl::StatusOr<std::vector<nlohmann::json>> vms) mutable {
              if (!vms.ok()) return retry_later(std::string(vms.status().message()));
              for (const nlohmann::json& vm : *vms) {
                const std::string computer = JsonString(
                    JsonMember(JsonMember(vm, "properties"), "osProfile"), "computerName");
                const std::string id = JsonString(vm, "id");
                if (computer.empty() || id.empty()) continue;
                {
                  absl::MutexLock lock(&self->mu_);
                  Claim* claim = self->CurrentLocked(name, generation);
                  if (claim == nullptr) return;
                  self->CancelTimersLocked(*claim);
                  claim->node.set_phase(kRunning);
                  // Kubernetes' provider id of an Azure VM: "azure://" + its resource id.
                  claim->node.set_provider_id("azure://" + id);
                  claim->node.set_node_name(absl::AsciiStrToLower(computer));
                  claim->node.set_message("agent pool " + name + " is running VM " + computer);
                }
                LogAbout(spdlog::level::info, self->About(name), "agent pool running, node {}",
                         computer);
                return;
              }
              retry_later("waiting for its VM");
            });
      });
}

void AzureProvider::ListAll(
    std::string url, std::vector<nlohmann::json> items,
    absl::AnyInvocable<void(absl::StatusOr<std::vector<nlohmann::json>>) &&> done) {
  arm_->Send(
      "GET", url, "",
      [self = shared_from_this(), items = std::move(items),
       done = std::move(done)](absl::StatusOr<http::Response> response) mutable {
        if (!response.ok() || response->status != 200) {
          return std::move(done)(absl::UnavailableError("LIST: " + ErrorOf(response).Describe()));
        }
        const nlohmann::json page = ParseJson(response->body);
        const nlohmann::json& value = JsonMember(page, "value");
        if (!value.is_array()) {
          return std::move(done)(absl::UnavailableError("LIST: the reply has no \"value\" array"));
        }
        for (const nlohmann::json& item : value) items.push_back(item);
        const std::string next = JsonString(page, "nextLink");
        if (next.empty()) return std::move(done)(std::move(items));
        // ARM's nextLink is absolute and carries the api-version.
        self->ListAll(next, std::move(items), std::move(done));
      });
}

void AzureProvider::GetNode(const std::string& claim_name, NodeDone done) {
  std::optional<v1::ProvisionedNode> node;
  {
    absl::MutexLock lock(&mu_);
    auto it = claims_.find(claim_name);
    if (it != claims_.end() && it->second.generation != 0) node = it->second.node;
  }
  if (!node) {
    return std::move(done)(absl::NotFoundError("node claim " + claim_name + " is not known"));
  }
  std::move(done)(*std::move(node));
}

void AzureProvider::DeleteNode(const std::string& claim_name, DeleteDone done) {
  if (!IsValidPoolName(claim_name)) return std::move(done)(true);  // No pool can have it.
  uint64_t generation = 0;
  bool stopped = false, deleting = false;
  {
    absl::MutexLock lock(&mu_);
    stopped = stopped_;
    Claim& claim = claims_[claim_name];
    deleting = claim.generation != 0 && claim.node.phase() == kDeleting;
    if (stopped || deleting) {
      if (claim.generation == 0) claims_.erase(claim_name);
    } else {
      CancelTimersLocked(claim);
      claim.generation = generation = next_generation_++;
      claim.node.set_claim_name(claim_name);
      claim.node.set_phase(kDeleting);
      claim.node.set_message("deleting agent pool " + claim_name);
    }
  }
  if (stopped) return std::move(done)(absl::UnavailableError("the provisioner is stopping"));
  if (deleting) return std::move(done)(false);
  // Read first: only a pool that is ours is deleted.
  arm_->Send("GET", WithApiVersion(PoolUrl(claim_name), options_.api_version), "",
             [self = shared_from_this(), claim_name, generation,
              done = std::move(done)](absl::StatusOr<http::Response> response) mutable {
               if (response.ok() && response->status == 404) {
                 self->Forget(claim_name, generation);
                 return std::move(done)(true);
               }
               if (!response.ok() || response->status != 200) {
                 // Unknown: try again on the next DeleteNode.
                 {
                   absl::MutexLock lock(&self->mu_);
                   if (Claim* claim = self->CurrentLocked(claim_name, generation)) {
                     claim->node.set_phase(kFailed);
                     claim->node.set_error_code("DeleteFailed");
                     claim->node.set_retryable(true);
                   }
                 }
                 return std::move(done)(absl::UnavailableError(
                     "reading agent pool " + claim_name + ": " + ErrorOf(response).Describe()));
               }
               const nlohmann::json pool = ParseJson(response->body);
               if (!IsOwnedPool(pool, claim_name)) {
                 spdlog::warn(
                     "node claim {}: agent pool {} was not created by kaito-provisioner; it is "
                     "not deleted",
                     claim_name, claim_name);
                 self->Forget(claim_name, generation);
                 return std::move(done)(true);
               }
               std::move(done)(false);
               if (absl::EqualsIgnoreCase(ResourceProvisioningState(pool), "Deleting")) {
                 absl::MutexLock lock(&self->mu_);
                 if (Claim* claim = self->CurrentLocked(claim_name, generation)) {
                   claim->op = Operation{};
                   claim->op.kind = PollerKind::kBody;
                   claim->op.method = "DELETE";
                   claim->op.resource_url = claim->op.poll_url =
                       self->WithApiVersion(self->PoolUrl(claim_name), self->options_.api_version);
                   self->ScheduleLocked(claim_name, *claim, self->options_.poll_interval,
                                        &AzureProvider::PollDelete);
                 }
                 return;
               }
               self->StartDelete(claim_name, generation);
             });
}

void AzureProvider::StartDelete(const std::string& name, uint64_t generation) {
  const std::string url = WithApiVersion(PoolUrl(name), options_.api_version);
  arm_->Send(
      "DELETE", url, "",
      [self = shared_from_this(), name, generation, url](absl::StatusOr<http::Response> response) {
        if (response.ok() &&
            (response->status == 204 || response->status == 404 || response->status == 200)) {
          return self->Forget(name, generation);
        }
        absl::MutexLock lock(&self->mu_);
        Claim* claim = self->CurrentLocked(name, generation);
        if (claim == nullptr) return;
        if (response.ok() && response->status == 202) {
          claim->op = StartOperation("DELETE", url, *response);
          self->ScheduleLocked(name, *claim, self->PollDelay(*response),
                               &AzureProvider::PollDelete);
          return;
        }
        // A create in progress that ARM will not preempt, throttling past the retries, a
        // fault: the delete is tried again.
        const ArmError error = ErrorOf(response);
        claim->node.set_message("deleting agent pool " + name + ": " + error.Describe());
        LogAbout(spdlog::level::warn, claim->about, "delete: {}; trying again", error.Describe());
        self->ScheduleLocked(name, *claim, self->options_.poll_interval,
                             &AzureProvider::StartDelete);
      });
}

void AzureProvider::PollDelete(const std::string& name, uint64_t generation) {
  std::optional<std::string> url = PollUrl(name, generation);
  if (!url) return;
  arm_->Send(
      "GET", *url, "",
      [self = shared_from_this(), name, generation](absl::StatusOr<http::Response> response) {
        OperationState state = OperationState::kInProgress;
        absl::Duration delay = self->options_.poll_interval;
        {
          absl::MutexLock lock(&self->mu_);
          Claim* claim = self->CurrentLocked(name, generation);
          if (claim == nullptr) return;
          if (response.ok()) {
            ReadPollResponse(*response, &claim->op);
            state = claim->op.state;
            delay = self->PollDelay(*response);
          }
          if (state == OperationState::kInProgress) {
            self->ScheduleLocked(name, *claim, delay, &AzureProvider::PollDelete);
            return;
          }
          if (state == OperationState::kFailed) {
            LogAbout(spdlog::level::warn, claim->about, "delete failed: {}; trying again",
                     claim->op.error.Describe());
            self->ScheduleLocked(name, *claim, self->options_.poll_interval,
                                 &AzureProvider::StartDelete);
            return;
          }
        }
        self->Forget(name, generation);
      });
}

LogSubject AzureProvider::About(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto it = claims_.find(name);
  return it != claims_.end() ? it->second.about : LogSubject{"", "", "nodeclaim/" + name};
}

void AzureProvider::Forget(const std::string& name, uint64_t generation) {
  absl::MutexLock lock(&mu_);
  auto it = claims_.find(name);
  if (it == claims_.end() || it->second.generation != generation) return;
  CancelTimersLocked(it->second);
  LogAbout(spdlog::level::info, it->second.about, "agent pool deleted");
  claims_.erase(it);
}

void AzureProvider::ListNodes(ListDone done) {
  ListAll(WithApiVersion(absl::StrCat(ClusterUrl(), "/agentPools"), options_.api_version), {},
          [self = shared_from_this(),
           done = std::move(done)](absl::StatusOr<std::vector<nlohmann::json>> pools) mutable {
            if (!pools.ok()) return std::move(done)(pools.status());
            std::map<std::string, v1::ProvisionedNode> nodes;
            {
              absl::MutexLock lock(&self->mu_);
              for (const nlohmann::json& pool : *pools) {
                const std::string name = JsonString(pool, "name");
                if (!IsOwnedPool(pool, name)) continue;
                auto known = self->claims_.find(name);
                if (known != self->claims_.end() && known->second.generation != 0) {
                  nodes[name] = known->second.node;
                  continue;
                }
                v1::ProvisionedNode node;
                node.set_claim_name(name);
                node.set_instance_type(JsonString(JsonMember(pool, "properties"), "vmSize"));
                const std::string state = ResourceProvisioningState(pool);
                if (absl::EqualsIgnoreCase(state, "Deleting")) {
                  node.set_phase(kDeleting);
                } else if (ProvisioningState(state) == OperationState::kSucceeded) {
                  node.set_phase(kRunning);
                } else if (ProvisioningState(state) == OperationState::kFailed) {
                  node.set_phase(kFailed);
                  node.set_error_code("CloudError");
                  node.set_retryable(true);
                } else {
                  node.set_phase(kCreating);
                }
                node.set_message("agent pool " + name + " is " + state);
                SetCreatedFromLabel(pool, &node);
                nodes[name] = std::move(node);
              }
              // Creates whose pool does not show yet.
              for (const auto& [name, claim] : self->claims_) {
                if (claim.generation != 0 && claim.node.phase() == kCreating) {
                  nodes.try_emplace(name, claim.node);
                }
              }
            }
            std::vector<v1::ProvisionedNode> out;
            for (auto& [name, node] : nodes) out.push_back(std::move(node));
            std::move(done)(std::move(out));
          });
}

void AzureProvider::Adopt(const nlohmann::json& pool) {
  const std::string name = JsonString(pool, "name");
  const std::string state = ResourceProvisioningState(pool);
  uint64_t generation = 0;
  bool deleting = absl::EqualsIgnoreCase(state, "Deleting");
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || claims_.contains(name)) return;
    Claim& claim = claims_[name];
    claim.generation = generation = next_generation_++;
    claim.about = PoolSubject(pool, name);
    claim.node.set_claim_name(name);
    claim.node.set_instance_type(JsonString(JsonMember(pool, "properties"), "vmSize"));
    SetCreatedFromLabel(pool, &claim.node);
    if (deleting) {
      claim.node.set_phase(kDeleting);
      claim.op.kind = PollerKind::kBody;
      claim.op.method = "DELETE";
      claim.op.resource_url = claim.op.poll_url =
          WithApiVersion(PoolUrl(name), options_.api_version);
      ScheduleLocked(name, claim, options_.min_poll_interval, &AzureProvider::PollDelete);
      return;
    }
    if (ProvisioningState(state) == OperationState::kFailed) {
      claim.node.set_phase(kFailed);
      claim.node.set_error_code("CloudError");
      claim.node.set_retryable(true);
      claim.node.set_message("agent pool " + name + " is " + state);
      return;
    }
    claim.node.set_phase(kCreating);
    claim.node.set_message("adopting agent pool " + name + " (" + state + ")");
  }
  LogAbout(spdlog::level::info, About(name), "adopting agent pool {} ({})", name, state);
  OnCreateProgress(name, generation, pool);
}

void AzureProvider::Start(absl::AnyInvocable<void(absl::Status) &&> done) {
  ListAll(WithApiVersion(absl::StrCat(ClusterUrl(), "/agentPools"), options_.api_version), {},
          [self = shared_from_this(),
           done = std::move(done)](absl::StatusOr<std::vector<nlohmann::json>> pools) mutable {
            if (!pools.ok()) return std::move(done)(pools.status());
            int adopted = 0;
            for (const nlohmann::json& pool : *pools) {
              if (!IsOwnedPool(pool, JsonString(pool, "name"))) continue;
              self->Adopt(pool);
              ++adopted;
            }
            spdlog::info("azure: {} agent pools listed, {} of them ours", pools->size(), adopted);
            std::move(done)(absl::OkStatus());
          });
}

void AzureProvider::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  if (scale_set_timer_ != 0) clock_->Cancel(scale_set_timer_);
  scale_set_timer_ = 0;
  for (auto& [name, claim] : claims_) CancelTimersLocked(claim);
}

std::map<std::string, int> AzureProvider::CountByPhase() {
  absl::MutexLock lock(&mu_);
  std::map<std::string, int> counts;
  for (const auto& [name, claim] : claims_) {
    if (claim.generation != 0) ++counts[claim.node.phase()];
  }
  return counts;
}

}  // namespace kaito::provisioner::azure
