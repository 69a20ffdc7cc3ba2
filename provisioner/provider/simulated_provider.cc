#include "provisioner/provider/simulated_provider.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "provisioner/azure/vm_size.h"
#include "provisioner/provider/request_validation.h"

namespace kaito::provisioner {
namespace {

constexpr char kCreating[] = "Creating";
constexpr char kRunning[] = "Running";
constexpr char kFailed[] = "Failed";
constexpr char kDeleting[] = "Deleting";

uint64_t Fnv1a64(absl::string_view text, uint64_t seed = 14695981039346656037ull) {
  uint64_t hash = seed;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return hash;
}

bool FaultMatches(const v1::SimulatedFault& fault, const std::string& instance_type) {
  return fault.instance_type().empty() || fault.instance_type() == "*" ||
         absl::EqualsIgnoreCase(fault.instance_type(), instance_type);
}

std::string GpuUuid(const std::string& node_name, int index) {
  const std::string key = node_name + "/" + std::to_string(index);
  const uint64_t hi = Fnv1a64(key);
  const uint64_t lo = Fnv1a64(key, hi);
  return absl::StrFormat("GPU-%08x-%04x-%04x-%04x-%012x", hi >> 32, (hi >> 16) & 0xffff,
                         hi & 0xffff, lo >> 48, lo & 0xffffffffffffull);
}

}  // namespace

absl::StatusOr<v1::SimulatedFault> ParseSimulatedFault(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    return absl::InvalidArgumentError("--simulated-fault \"" + text +
                                      "\": expected TYPE=CODE[:retryable]");
  }
  v1::SimulatedFault fault;
  std::string type = text.substr(0, eq);
  if (type != "*") fault.set_instance_type(type);
  std::string code = text.substr(eq + 1);
  if (const size_t colon = code.find(':'); colon != std::string::npos) {
    const std::string flag = code.substr(colon + 1);
    if (flag != "retryable") {
      return absl::InvalidArgumentError("--simulated-fault \"" + text + "\": unknown flag \"" +
                                        flag + "\" (only \"retryable\")");
    }
    fault.set_retryable(true);
    code.resize(colon);
  }
  if (code.empty()) {
    return absl::InvalidArgumentError("--simulated-fault \"" + text +
                                      "\": the error code is empty");
  }
  fault.set_error_code(code);
  return fault;
}

std::string SimulatedCloudMessage(const std::string& error_code, const std::string& instance_type,
                                  const std::string& location) {
  if (error_code == "QuotaExceeded" || error_code == "OperationNotAllowed") {
    const VmSizeFacts facts = AzureVmSizeFacts(instance_type);
    const std::string& family = facts.family;
    const int cores = facts.vcpus;
    return absl::StrFormat(
        "Operation could not be completed as it results in exceeding approved %s Cores quota. "
        "Additional details - Deployment Model: Resource Manager, Location: %s, Current "
        "Limit: 0, Current Usage: 0, Additional Required: %d, (Minimum) New Limit Required: "
        "%d. Submit a request for Quota increase at "
        "https://aka.ms/ProdportalCRP/#blade/Microsoft_Azure_Capacity/UsageAndQuota.ReactView "
        "by specifying parameters listed in the 'Details' section for deployment to succeed. "
        "Please read more about quota limits at "
        "https://docs.microsoft.com/en-us/azure/azure-supportability/per-vm-quota-requests",
        family, location, cores, cores);
  }
  if (error_code == "SkuNotAvailable") {
    return absl::StrFormat(
        "The requested VM size for resource 'Following SKUs have failed for Capacity "
        "Restrictions: %s' is currently not available in location '%s'. Please try another "
        "size or deploy to a different location or different zone. See "
        "https://aka.ms/azureskunotavailable for details.",
        instance_type, location);
  }
  if (error_code == "AllocationFailed" || error_code == "ZonalAllocationFailed") {
    return absl::StrFormat(
        "Allocation failed. We do not have sufficient capacity for the requested VM size in "
        "this %s. Read more about improving likelihood of allocation success at "
        "http://aka.ms/allocation-guidance",
        error_code == "AllocationFailed" ? "region" : "zone");
  }
  if (error_code == "OverconstrainedAllocationRequest") {
    return absl::StrFormat(
        "Allocation failed. VM(s) with the following constraints cannot be allocated, because "
        "the condition is too restrictive. Please remove some constraints and try again. "
        "Constraints applied are: VM Size: %s, Location: %s.",
        instance_type, location);
  }
  return absl::StrFormat(
      "The simulated cloud failed the operation for VM size '%s' in location '%s' with %s "
      "(an injected fault).",
      instance_type, location, error_code);
}

std::string SimulatedNodeName(const std::string& claim_name) {
  return absl::StrFormat("aks-%s-%06x-vmss000000", claim_name, Fnv1a64(claim_name) & 0xffffffull);
}

std::string SimulatedProviderId(const std::string& cloud, const std::string& claim_name) {
  const uint64_t hash = Fnv1a64(claim_name);
  if (cloud == "aws") {
    return absl::StrFormat("aws:///simulated-1a/i-0%016x", hash);
  }
  if (cloud == "azure") {
    return absl::StrFormat(
        "azure:///subscriptions/simulated/resourceGroups/simulated/providers/"
        "Microsoft.Compute/virtualMachineScaleSets/aks-%s-%06x-vmss/virtualMachines/0",
        claim_name, hash & 0xffffffull);
  }
  return cloud + ":///simulated/" + SimulatedNodeName(claim_name);
}

SimulatedProvider::SimulatedProvider(Clock* clock, const presets::Catalog* catalog,
                                     std::string cloud, SimulatedProviderOptions options,
                                     NodeBootstrapper* bootstrapper)
    : clock_(clock),
      catalog_(catalog),
      cloud_(std::move(cloud)),
      options_(std::move(options)),
      bootstrapper_(bootstrapper) {
  spdlog::warn(
      "SIMULATED CLOUD ({}): no machine is created and nothing is billed; node claims "
      "become simulated nodes {} after a create and are gone {} after a delete",
      cloud_, absl::FormatDuration(options_.create_delay),
      absl::FormatDuration(options_.delete_delay));
}

SimulatedProvider::~SimulatedProvider() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  for (auto it = timers_.begin(); it != timers_.end();) {
    // A timer that cannot be cancelled is running now; it removes itself.
    it = clock_->Cancel(it->second) ? timers_.erase(it) : std::next(it);
  }
  auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return timers_.empty() && callbacks_running_ == 0;
  };
  mu_.Await(absl::Condition(&idle));
}

uint64_t SimulatedProvider::ArmLocked(absl::Duration delay, uint64_t attempt,
                                      std::string claim_name, bool create) {
  const uint64_t token = next_token_++;
  // The callback cannot run before `timers_` holds the token: it needs `mu_` first.
  timers_[token] =
      clock_->RunAfter(delay, [this, token, attempt, create, claim_name = std::move(claim_name)] {
        if (create) {
          OnCreateDue(token, claim_name, attempt);
        } else {
          OnDeleteDue(token, claim_name, attempt);
        }
      });
  return token;
}

void SimulatedProvider::CancelLocked(Claim& claim) {
  if (claim.timer_token == 0) return;
  auto it = timers_.find(claim.timer_token);
  if (it != timers_.end() && clock_->Cancel(it->second)) timers_.erase(it);
  claim.timer_token = 0;
}

bool SimulatedProvider::TakeTimerLocked(uint64_t token) {
  timers_.erase(token);
  return !stopping_;
}

void SimulatedProvider::FinishCallbackLocked() { --callbacks_running_; }

LogSubject SimulatedProvider::ClaimSubject(const std::string& claim_name, const Claim& claim) {
  return SubjectFromLabels(claim.request.spec().labels(), "nodeclaim/" + claim_name);
}

void SimulatedProvider::StartAttemptLocked(const std::string& claim_name, Claim& claim) {
  claim.attempt = next_attempt_++;
  claim.started = false;
  claim.node.Clear();
  claim.node.set_claim_name(claim_name);
  claim.node.set_phase(kCreating);
  claim.node.set_instance_type(claim.request.spec().instance_type());
  const int64_t now_ns = absl::ToUnixNanos(clock_->Now());
  claim.node.mutable_created_time()->set_seconds(now_ns / 1000000000);
  claim.node.mutable_created_time()->set_nanos(static_cast<int32_t>(now_ns % 1000000000));
  claim.timer_token = ArmLocked(options_.create_delay, claim.attempt, claim_name, true);
  LogAbout(spdlog::level::info, ClaimSubject(claim_name, claim),
           "simulated cloud: Creating ({}), outcome in {}", claim.request.spec().instance_type(),
           absl::FormatDuration(options_.create_delay));
}

void SimulatedProvider::CreateNode(const v1::CreateNodeRequest& request, NodeDone done) {
  if (absl::Status s = ValidateCreateNodeRequest(request); !s.ok()) {
    std::move(done)(s);
    return;
  }
  v1::ProvisionedNode node;
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = claims_.try_emplace(request.claim_name());
    Claim& claim = it->second;
    if (inserted || claim.node.phase() == kFailed) {
      claim.request = request;
      StartAttemptLocked(request.claim_name(), claim);
    }
    node = claim.node;
  }
  std::move(done)(std::move(node));
}

void SimulatedProvider::GetNode(const std::string& claim_name, NodeDone done) {
  if (absl::Status s = ValidateClaimName(claim_name); !s.ok()) {
    std::move(done)(s);
    return;
  }
  absl::StatusOr<v1::ProvisionedNode> result;
  {
    absl::MutexLock lock(&mu_);
    auto it = claims_.find(claim_name);
    if (it == claims_.end()) {
      result = absl::NotFoundError("node claim \"" + claim_name + "\" has no machine");
    } else {
      result = it->second.node;
    }
  }
  std::move(done)(std::move(result));
}

void SimulatedProvider::DeleteNode(const std::string& claim_name, DeleteDone done) {
  if (absl::Status s = ValidateClaimName(claim_name); !s.ok()) {
    std::move(done)(s);
    return;
  }
  bool gone = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = claims_.find(claim_name);
    if (it == claims_.end()) {
      gone = true;
    } else if (it->second.node.phase() != kDeleting) {
      Claim& claim = it->second;
      CancelLocked(claim);
      claim.node.set_phase(kDeleting);
      claim.node.clear_error_code();
      claim.node.clear_retryable();
      claim.node.clear_message();
      claim.timer_token = ArmLocked(options_.delete_delay, claim.attempt, claim_name, false);
      LogAbout(spdlog::level::info, ClaimSubject(claim_name, claim),
               "simulated cloud: Deleting, gone in {}",
               absl::FormatDuration(options_.delete_delay));
    }
  }
  std::move(done)(gone);
}

void SimulatedProvider::ListNodes(ListDone done) {
  std::vector<v1::ProvisionedNode> nodes;
  {
    absl::MutexLock lock(&mu_);
    nodes.reserve(claims_.size());
    for (const auto& [name, claim] : claims_) nodes.push_back(claim.node);
  }
  std::move(done)(std::move(nodes));
}

void SimulatedProvider::SetFaults(std::vector<v1::SimulatedFault> faults) {
  absl::MutexLock lock(&mu_);
  if (faults.empty()) {
    spdlog::info("simulated cloud: faults lifted");
  }
  for (const v1::SimulatedFault& f : faults) {
    spdlog::info("simulated cloud: fault {} for {}{}", f.error_code(),
                 f.instance_type().empty() ? "every instance type" : f.instance_type(),
                 f.retryable() ? " (retryable)" : "");
  }
  faults_ = std::move(faults);
}

std::vector<v1::SimulatedFault> SimulatedProvider::faults() {
  absl::MutexLock lock(&mu_);
  return faults_;
}

std::map<std::string, int> SimulatedProvider::CountByPhase() {
  std::map<std::string, int> counts = {{kCreating, 0}, {kRunning, 0}, {kFailed, 0}, {kDeleting, 0}};
  absl::MutexLock lock(&mu_);
  for (const auto& [name, claim] : claims_) ++counts[claim.node.phase()];
  return counts;
}

void SimulatedProvider::OnCreateDue(uint64_t token, const std::string& claim_name,
                                    uint64_t attempt) {
  BootstrapSpec spec;
  {
    absl::MutexLock lock(&mu_);
    if (!TakeTimerLocked(token)) return;
    auto it = claims_.find(claim_name);
    if (it == claims_.end() || it->second.attempt != attempt ||
        it->second.node.phase() != kCreating) {
      return;  // Superseded by a delete.
    }
    Claim& claim = it->second;
    claim.timer_token = 0;
    const std::string& type = claim.request.spec().instance_type();
    auto fail = [&](const std::string& code, bool retryable, const std::string& message) {
      claim.node.set_phase(kFailed);
      claim.node.set_error_code(code);
      claim.node.set_retryable(retryable);
      claim.node.set_message(message);
      LogAbout(spdlog::level::warn, ClaimSubject(claim_name, claim),
               "simulated cloud: Failed ({}): {}{}: {}", type, code,
               retryable ? " (retryable)" : "", message);
    };
    for (const v1::SimulatedFault& fault : faults_) {
      if (!FaultMatches(fault, type)) continue;
      fail(fault.error_code(), fault.retryable(),
           fault.message().empty()
               ? SimulatedCloudMessage(fault.error_code(), type, options_.location)
               : fault.message());
      return;
    }
    const presets::Sku* sku = catalog_->FindSku(cloud_, type);
    if (sku == nullptr) {
      fail("SkuNotAvailable", false,
           SimulatedCloudMessage("SkuNotAvailable", type, options_.location) +
               " (the instance type is not in the SKU catalog of cloud " + cloud_ + ")");
      return;
    }
    spec.node_name = SimulatedNodeName(claim_name);
    spec.provider_id = SimulatedProviderId(cloud_, claim_name);
    spec.instance_type = sku->name;
    const v1::NodeClaimSpec& claim_spec = claim.request.spec();
    spec.labels.insert(claim_spec.labels().begin(), claim_spec.labels().end());
    spec.labels["node.kubernetes.io/instance-type"] = sku->name;
    spec.labels["kaito.sh/nodeclaim"] = claim_name;
    spec.taints.assign(claim_spec.taints().begin(), claim_spec.taints().end());
    for (int i = 0; i < sku->gpu_count; ++i) {
      v1::GpuInfo gpu;
      gpu.set_uuid(GpuUuid(spec.node_name, i));
      gpu.set_model(sku->gpu_model);
      gpu.set_memory_bytes(sku->PerGpuBytes());
      gpu.set_compute_capability(sku->compute_capability);
      gpu.set_healthy(true);
      spec.gpus.push_back(std::move(gpu));
    }
    spec.agent_server = claim.request.agent_server();
    ++callbacks_running_;
  }

  const absl::Status started = bootstrapper_->StartNode(spec);

  bool stop = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = claims_.find(claim_name);
    Claim* claim = it != claims_.end() && it->second.attempt == attempt ? &it->second : nullptr;
    if (claim == nullptr) {
      // Deleted and gone while its agent started: nothing will stop it but us.
      stop = started.ok();
    } else if (started.ok()) {
      // Also when a delete came meanwhile: the delete then stops the agent.
      claim->started = true;
      if (claim->node.phase() == kCreating) {
        claim->node.set_phase(kRunning);
        claim->node.set_node_name(spec.node_name);
        claim->node.set_provider_id(spec.provider_id);
        LogAbout(spdlog::level::info, ClaimSubject(claim_name, *claim),
                 "simulated cloud: Running ({}) as node {} with {} GPU(s)", spec.instance_type,
                 spec.node_name, spec.gpus.size());
      }
    } else if (claim->node.phase() == kCreating) {
      claim->node.set_phase(kFailed);
      claim->node.set_error_code("BootstrapFailed");
      claim->node.set_retryable(!absl::IsInvalidArgument(started));
      claim->node.set_message("the simulated agent of node " + spec.node_name +
                              " did not start: " + started.ToString());
      LogAbout(spdlog::level::warn, ClaimSubject(claim_name, *claim), "simulated cloud: Failed: {}",
               claim->node.message());
    }
    if (!stop) FinishCallbackLocked();
  }
  if (stop) {
    bootstrapper_->StopNode(spec.node_name);
    absl::MutexLock lock(&mu_);
    FinishCallbackLocked();
  }
}

void SimulatedProvider::OnDeleteDue(uint64_t token, const std::string& claim_name,
                                    uint64_t attempt) {
  std::string node_name;
  {
    absl::MutexLock lock(&mu_);
    if (!TakeTimerLocked(token)) return;
    auto it = claims_.find(claim_name);
    if (it == claims_.end() || it->second.attempt != attempt ||
        it->second.node.phase() != kDeleting) {
      return;
    }
    const bool started = it->second.started;
    LogAbout(spdlog::level::info, ClaimSubject(claim_name, it->second), "simulated cloud: gone");
    claims_.erase(it);
    if (!started) return;
    node_name = SimulatedNodeName(claim_name);
    ++callbacks_running_;
  }
  bootstrapper_->StopNode(node_name);
  absl::MutexLock lock(&mu_);
  FinishCallbackLocked();
}

}  // namespace kaito::provisioner
