#include "server/controllers/nodeclaim_reconciler.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "presets/offerings.h"
#include "server/controllers/conditions.h"
#include "server/controllers/workspace_reconciler.h"
#include "server/registry/sync_writes.h"

namespace kaito::server {
namespace {

LogSubject Subject(const v1::NodeClaim& claim) {
  return SubjectFromLabels(claim.metadata().labels(), "nodeclaim/" + claim.metadata().name());
}

}  // namespace

absl::Duration NodeClaimReconciler::Backoff(int attempts) const {
  absl::Duration d = options_.retry_base;
  for (int i = 1; i < attempts && d < options_.retry_cap; ++i) d *= 2;
  return std::min(d, options_.retry_cap);
}

bool NodeClaimReconciler::StartCall(const std::string& name) {
  absl::MutexLock lock(&mu_);
  return in_flight_.insert(name).second;
}

void NodeClaimReconciler::EndCall(const std::string& name) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(name);
}

absl::StatusOr<ReconcileResult> NodeClaimReconciler::Reconcile(const std::string& key) {
  const std::string name = SplitKey(key).second;
  auto current = objects_.nodeclaims->GetShared("", name);
  if (!current) return ReconcileResult::Done();
  if (current->metadata().has_deletion_timestamp()) return Release(*current);
  v1::NodeClaim claim = *current;
  if (!HasFinalizer(claim.metadata(), kNodeClaimFinalizer)) {
    claim.mutable_metadata()->add_finalizers(kNodeClaimFinalizer);
    auto written = UpdateSync(*objects_.nodeclaims, claim);
    if (!written.ok()) return written.status();
    claim = std::move(written->object);
  }
  const v1::NodeClaimStatus& s = claim.status();
  const absl::Time now = clock_->Now();
  const std::string& phase = s.phase();
  if (phase.empty() || phase == "Pending") {
    if (s.has_next_attempt_time() && FromTimestamp(s.next_attempt_time()) > now) {
      return ReconcileResult::RequeueAfter(FromTimestamp(s.next_attempt_time()) - now);
    }
    // The attempt is recorded before the call, so that a crash never loses the count.
    v1::NodeClaim update = claim;
    update.mutable_status()->set_phase("Launching");
    update.mutable_status()->set_attempts(s.attempts() + 1);
    *update.mutable_status()->mutable_last_attempt_time() = ToTimestamp(now);
    update.mutable_status()->clear_next_attempt_time();
    auto written = UpdateStatusSync(*objects_.nodeclaims, std::move(update));
    if (!written.ok()) return written.status();
    claim = std::move(written->object);
  }
  if (claim.status().phase() == "Launching") {
    if (StartCall(name)) {
      // The completion records what it learned in the claim's status; that write's
      // event brings the claim back (and the requeue below polls while it is created).
      auto observe = [this, name, about = Subject(claim)](absl::StatusOr<v1::ProvisionedNode> r) {
        EndCall(name);
        if (r.ok()) return Observe(name, *r);
        LogAbout(spdlog::level::warn, about, "provisioner: {}", r.status().ToString());
        if (absl::IsInvalidArgument(r.status())) {
          // The provisioner refuses the claim itself: no attempt can succeed.
          v1::ProvisionedNode refused;
          refused.set_phase("Failed");
          refused.set_error_code("InvalidNodeClaim");
          refused.set_retryable(false);
          refused.set_message(std::string(r.status().message()));
          return Observe(name, refused);
        }
        // The create did not reach the provider (UNAVAILABLE, a deadline), or the provider
        // does not know the claim (NOT_FOUND after a provisioner restart): the next poll
        // creates again (idempotent by name).
        absl::MutexLock lock(&mu_);
        created_attempt_.erase(name);
      };
      const int attempt = claim.status().attempts();
      bool create;
      {
        absl::MutexLock lock(&mu_);
        auto [it, inserted] = created_attempt_.try_emplace(name, attempt);
        create = inserted || it->second != attempt;
        it->second = attempt;
      }
      if (create) {
        // One CreateNode per attempt (a provider starts a new attempt on a create after a
        // failure); it is idempotent, so one more after a restart only re-reads a create
        // in progress. Later polls only read.
        v1::CreateNodeRequest request;
        request.set_claim_name(name);
        *request.mutable_spec() = claim.spec();
        request.set_agent_server(options_.agent_server);
        provisioner_->CreateNode(request, std::move(observe));
      } else {
        provisioner_->GetNode(name, std::move(observe));
      }
    }
    return ReconcileResult::RequeueAfter(options_.poll_interval);
  }
  if (claim.status().phase() == "Registered" || claim.status().phase() == "Ready") {
    return Follow(claim, now);
  }
  return ReconcileResult::Done();  // Failed: final (the workspace decides what follows).
}

namespace {

// When the claim's machine was created: its Launched condition (or, for a claim recorded
// before there was one, the start of its attempt).
absl::Time LaunchedTime(const v1::NodeClaimStatus& s) {
  const v1::Condition* launched = FindCondition(s.conditions(), "Launched");
  if (launched != nullptr && launched->has_last_transition_time()) {
    return FromTimestamp(launched->last_transition_time());
  }
  return FromTimestamp(s.last_attempt_time());
}

int HealthyGpus(const v1::Node& node) {
  int n = 0;
  for (const auto& g : node.status().gpus()) n += g.healthy() ? 1 : 0;
  return n;
}

}  // namespace

std::string NodeClaimReconciler::FailureText(const v1::NodeClaimStatus& s) const {
  return absl::StrCat(
      s.error_code(), ": ", s.message(),
      s.phase() == "Failed"
          ? absl::StrCat(" (attempt ", s.attempts(), ", giving up)")
          : absl::StrCat(" (attempt ", s.attempts(), " of ", options_.max_attempts,
                         "; retrying in ", absl::FormatDuration(Backoff(s.attempts())), ")"));
}

absl::StatusOr<ReconcileResult> NodeClaimReconciler::Follow(const v1::NodeClaim& claim,
                                                            absl::Time now) {
  const v1::NodeClaimStatus& s = claim.status();
  const std::string& node_name = s.node_name();
  auto node = objects_.nodes->GetShared("", node_name);
  if (node && node->metadata().has_deletion_timestamp()) node = nullptr;
  const int expected =
      options_.expected_gpus ? options_.expected_gpus(claim.spec().instance_type()) : 0;
  const int gpus = node ? HealthyGpus(*node) : 0;
  // Why the node is not ready (empty when it is), as the claim's Ready condition says it.
  std::string reason, message;
  if (!node) {
    reason = "NodeNotRegistered";
    message = "waiting for the agent of node " + node_name + " to register";
  } else if (!NodeIsReady(*node)) {
    const v1::Condition* c = FindCondition(node->status().conditions(), "Ready");
    reason = "NodeNotReady";
    message = "node " + node_name + " is not ready" +
              (c != nullptr && !c->message().empty() ? ": " + c->message() : "");
  } else if (gpus < expected) {
    reason = "GpuNotFound";
    message =
        absl::StrCat("node ", node_name, " reports ", gpus, " healthy GPU", gpus == 1 ? "" : "s",
                     " of the ", expected, " of ", claim.spec().instance_type(),
                     " (is the NVIDIA driver loaded on the machine?)");
  }
  const bool ready = reason.empty();
  const bool initialized = ready || IsConditionTrue(s.conditions(), "Initialized");
  absl::Time deadline = absl::InfiniteFuture();
  if (!initialized && options_.initialization_timeout > absl::ZeroDuration()) {
    deadline = LaunchedTime(s) + options_.initialization_timeout;
    if (now >= deadline) {
      const std::string waited = absl::FormatDuration(options_.initialization_timeout);
      if (!node) {
        return Repair(claim, "RegistrationTimeout",
                      absl::StrCat("no agent registered node ", node_name, " within ", waited,
                                   " of its machine's creation"),
                      now);
      }
      return Repair(
          claim, "NodeNotInitialized",
          absl::StrCat(message, "; not initialized within ", waited, " of its machine's creation"),
          now);
    }
  }
  v1::NodeClaim update = claim;
  v1::NodeClaimStatus* us = update.mutable_status();
  us->set_phase(ready ? "Ready" : "Registered");
  SetCondition(us->mutable_conditions(), "Ready", ready, ready ? "NodeReady" : reason,
               ready ? "node " + node_name + " is ready" : message, claim.metadata().generation(),
               now);
  if (ready) {
    SetCondition(us->mutable_conditions(), "Initialized", true, "NodeInitialized",
                 absl::StrCat("node ", node_name, " registered, ready, with ", gpus, " healthy GPU",
                              gpus == 1 ? "" : "s"),
                 claim.metadata().generation(), now);
  }
  if (!google::protobuf::util::MessageDifferencer::Equals(update.status(), s)) {
    auto written = UpdateStatusSync(*objects_.nodeclaims, std::move(update));
    if (!written.ok()) return written.status();
    if (ready && s.phase() != "Ready") {
      events_->Normal(claim, "NodeReady", "Node " + node_name + " registered and is ready");
    }
  }
  if (deadline == absl::InfiniteFuture()) return ReconcileResult::Done();
  return ReconcileResult::RequeueAfter(deadline - now);
}

bool NodeClaimReconciler::ReleaseMachine(const v1::NodeClaim& claim) {
  const std::string& name = claim.metadata().name();
  if (StartCall(name)) {
    provisioner_->DeleteNode(name, [this, name, about = Subject(claim)](absl::StatusOr<bool> gone) {
      EndCall(name);
      if (!gone.ok()) {
        LogAbout(spdlog::level::warn, about, "delete: {}", gone.status().ToString());
      } else if (*gone) {
        {
          absl::MutexLock lock(&mu_);
          released_.insert(name);
        }
        enqueue_(name);  // Only then: otherwise the requeue-after polls.
      }
    });
  }
  absl::MutexLock lock(&mu_);
  const bool released = released_.erase(name) > 0;
  if (released) created_attempt_.erase(name);
  return released;
}

absl::StatusOr<ReconcileResult> NodeClaimReconciler::Repair(const v1::NodeClaim& claim,
                                                            const std::string& code,
                                                            const std::string& message,
                                                            absl::Time now) {
  const std::string& node_name = claim.status().node_name();
  if (!ReleaseMachine(claim)) {
    // Said once, while the machine goes (a restart meanwhile asks again: idempotent).
    v1::NodeClaim update = claim;
    SetCondition(update.mutable_status()->mutable_conditions(), "Ready", false, code,
                 message + "; releasing the machine", claim.metadata().generation(), now);
    if (!google::protobuf::util::MessageDifferencer::Equals(update.status(), claim.status())) {
      auto written = UpdateStatusSync(*objects_.nodeclaims, std::move(update));
      if (!written.ok()) return written.status();
      events_->Warning(claim, code, message + "; releasing its machine");
      LogAbout(spdlog::level::warn, Subject(claim), "{}: {}; releasing its machine", code, message);
    }
    return ReconcileResult::RequeueAfter(options_.poll_interval);
  }
  if (!node_name.empty()) {
    auto deleted = DeleteSync(*objects_.nodes, "", node_name);
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
  }
  v1::NodeClaim update = claim;
  v1::NodeClaimStatus* s = update.mutable_status();
  s->clear_node_name();
  s->clear_provider_id();
  s->set_error_code(code);
  s->set_message(message);
  s->set_retryable(true);
  RemoveCondition(s->mutable_conditions(), "Launched");
  if (s->attempts() < options_.max_attempts) {
    s->set_phase("Pending");
    *s->mutable_next_attempt_time() = ToTimestamp(now + Backoff(s->attempts()));
  } else {
    s->set_phase("Failed");
  }
  SetCondition(s->mutable_conditions(), "Ready", false, code, message,
               claim.metadata().generation(), now);
  const std::string text = FailureText(*s);
  auto written = UpdateStatusSync(*objects_.nodeclaims, std::move(update));
  if (!written.ok()) return written.status();
  events_->Warning(claim, "NodeClaimFailed", text);
  return ReconcileResult::Done();  // The write brings the claim back.
}

void NodeClaimReconciler::Observe(const std::string& name, const v1::ProvisionedNode& node) {
  auto current = objects_.nodeclaims->GetShared("", name);
  if (!current || current->metadata().has_deletion_timestamp() ||
      current->status().phase() != "Launching") {
    return;
  }
  v1::NodeClaim update = *current;
  v1::NodeClaimStatus* s = update.mutable_status();
  const absl::Time now = clock_->Now();
  bool failed = false;
  if (node.phase() == "Running") {
    s->set_phase("Registered");
    SetCondition(s->mutable_conditions(), "Launched", true, "MachineCreated",
                 "machine " + node.provider_id() + " created", current->metadata().generation(),
                 now);
    s->set_node_name(node.node_name());
    s->set_provider_id(node.provider_id());
    s->clear_error_code();
    s->clear_message();
    s->set_retryable(false);
  } else if (node.phase() == "Failed") {
    failed = true;
    s->set_error_code(node.error_code().empty() ? "ProvisioningFailed" : node.error_code());
    s->set_message(node.message());
    s->set_retryable(node.retryable());
    // With capacity fallback a capacity or quota failure ends the claim at once: the
    // workspace moves to another offering instead of waiting for this one.
    const bool fall_back = presets::IsCapacityError(s->error_code()) &&
                           current->metadata().annotations().contains(kAnnotationCapacityFallback);
    if (node.retryable() && !fall_back && s->attempts() < options_.max_attempts) {
      s->set_phase("Pending");
      *s->mutable_next_attempt_time() = ToTimestamp(now + Backoff(s->attempts()));
    } else {
      s->set_phase("Failed");
    }
  } else {
    return;  // Still creating.
  }
  const std::string message = failed ? FailureText(*s) : "";
  // Conditional on the status read above: of two completions racing for one claim only
  // the first is recorded (and only it emits the event).
  objects_.nodeclaims->UpdateStatus(
      std::move(update), [this, name, failed, message, node,
                          claim = *current](absl::StatusOr<WriteResult<v1::NodeClaim>> r) {
        if (!r.ok()) {
          LogAbout(spdlog::level::debug, Subject(claim), "status: {}", r.status().ToString());
          return;
        }
        if (failed) {
          events_->Warning(claim, "NodeClaimFailed", message);
        } else {
          events_->Normal(claim, "NodeLaunched",
                          "Machine " + node.provider_id() + " created; waiting for node " +
                              node.node_name() + " to register");
        }
      });
}

absl::StatusOr<ReconcileResult> NodeClaimReconciler::Release(const v1::NodeClaim& claim) {
  const std::string name = claim.metadata().name();
  if (!HasFinalizer(claim.metadata(), kNodeClaimFinalizer)) return ReconcileResult::Done();
  const bool released = ReleaseMachine(claim);
  if (!released) return ReconcileResult::RequeueAfter(options_.poll_interval);
  // The machine is gone: so is its node.
  if (!claim.status().node_name().empty()) {
    auto deleted = DeleteSync(*objects_.nodes, "", claim.status().node_name());
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
  }
  v1::NodeClaim update = claim;
  RemoveFinalizer(update.mutable_metadata(), kNodeClaimFinalizer);
  update.mutable_metadata()->clear_resource_version();
  auto written = UpdateSync(*objects_.nodeclaims, std::move(update));
  if (!written.ok() && !absl::IsNotFound(written.status())) return written.status();
  events_->Normal(claim, "NodeClaimDeleted", "Released the machine of node claim " + name);
  return ReconcileResult::Done();
}

}  // namespace kaito::server
