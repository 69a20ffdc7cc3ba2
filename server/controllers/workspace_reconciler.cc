#include "server/controllers/workspace_reconciler.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "common/label_selector.h"
#include "presets/planner.h"
#include "presets/offerings.h"
#include "server/controllers/conditions.h"
#include "server/registry/sync_writes.h"

namespace kaito::server {
namespace {

using google::protobuf::util::MessageDifferencer;

// Kaito's reasons (shared/reference/kaito.md §1.3).
constexpr char kReasonResourceSuccess[] = "workspaceResourceStatusSuccess";
constexpr char kReasonResourceNotReady[] = "workspaceResourceStatusNotReady";
constexpr char kReasonNodeClaimsReady[] = "NodeClaimsReady";
constexpr char kReasonNodeClaimNotReady[] = "NodeClaimNotReady";
constexpr char kReasonInferenceSuccess[] = "WorkspaceInferenceStatusSuccess";
constexpr char kReasonInferencePending[] = "WorkspaceInferenceStatusPending";
constexpr char kReasonJobStarted[] = "WorkspaceTuningJobStatusStarted";
constexpr char kReasonJobPending[] = "WorkspaceTuningJobStatusPending";
constexpr char kReasonJobFailed[] = "WorkspaceTuningJobStatusFailed";
constexpr char kReasonSucceeded[] = "workspaceSucceeded";
constexpr char kReasonPending[] = "workspacePending";
constexpr char kReasonFailed[] = "workspaceFailed";

bool IsDeleting(const v1::ObjectMeta& meta) { return meta.has_deletion_timestamp(); }

bool Owns(const v1::ObjectMeta& meta, const v1::Workspace& ws) {
  auto name = meta.labels().find(kLabelWorkspace);
  auto ns = meta.labels().find(kLabelWorkspaceNamespace);
  return name != meta.labels().end() && name->second == ws.metadata().name() &&
         ns != meta.labels().end() && ns->second == ws.metadata().namespace_();
}

// Kaito's priority of pod failure reasons (InferenceReady=False classification).
int ReasonRank(const std::string& reason) {
  static const char* kOrder[] = {"ContainerOOMKilled", "ImagePullError", "ContainerStartError",
                                 "ContainerCrashLoopBackOff", "NodeLost"};
  for (int i = 0; i < 5; ++i) {
    if (reason == kOrder[i]) return i;
  }
  return 10;
}

// The retry count an object carries (the workspace's, or the one a claim or workload was
// made under); 0 when absent.
int64_t RetryCount(const v1::ObjectMeta& meta) {
  auto it = meta.annotations().find(kAnnotationRetryRequested);
  int64_t n = 0;
  if (it != meta.annotations().end()) (void)absl::SimpleAtoi(it->second, &n);
  return n;
}

bool MadeBeforeRetry(const v1::ObjectMeta& meta, int64_t retries) {
  return RetryCount(meta) < retries;
}

std::string Plural(int n, const char* what) { return absl::StrCat(n, " ", what, n == 1 ? "" : "s"); }

}  // namespace

absl::Status WorkspaceReconciler::ReleaseIfNodeGone(const v1::Workload& w) {
  // Nobody will confirm that a workload on a node that is not ready has stopped: its
  // finalizer is removed here (a lost node's agent that comes back stops it, as it is no
  // longer in its desired set).
  if (!HasFinalizer(w.metadata(), kWorkloadFinalizer)) return absl::OkStatus();
  auto node = objects_.nodes->GetShared("", w.spec().node_name());
  if (node && NodeIsReady(*node)) return absl::OkStatus();
  v1::Workload update = w;
  RemoveFinalizer(update.mutable_metadata(), kWorkloadFinalizer);
  update.mutable_metadata()->clear_resource_version();
  auto written = UpdateSync(*objects_.workloads, std::move(update));
  if (!written.ok() && !absl::IsNotFound(written.status())) return written.status();
  return absl::OkStatus();
}

bool NodeIsReady(const v1::Node& node) {
  return !node.metadata().has_deletion_timestamp() &&
         IsConditionTrue(node.status().conditions(), "Ready");
}

bool NodeIsLost(const v1::Node& node) {
  const v1::Condition* c = FindCondition(node.status().conditions(), "Ready");
  return c != nullptr && c->status() != "True" && c->reason() == "NodeLost";
}

std::string WorkspaceReconciler::ClaimName(const v1::Workspace& ws, int slot) {
  // FNV-1a over the identity of the workspace and the slot.
  const std::string id = absl::StrCat(ws.metadata().namespace_(), "/", ws.metadata().name(), "/",
                                      ws.metadata().uid(), "/", slot);
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : id) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return absl::StrFormat("ws%010x", h & 0xffffffffffULL);
}

absl::StatusOr<ReconcileResult> WorkspaceReconciler::Reconcile(const std::string& key) {
  auto [ns, name] = SplitKey(key);
  std::shared_ptr<const v1::Workspace> current = objects_.workspaces->GetShared(ns, name);
  if (!current) return ReconcileResult::Done();  // Gone: the garbage collector cleans up.
  if (IsDeleting(current->metadata())) return Finalize(*current);

  v1::Workspace ws = *current;
  if (!HasFinalizer(ws.metadata(), kWorkspaceFinalizer)) {
    v1::Workspace update = ws;
    update.mutable_metadata()->add_finalizers(kWorkspaceFinalizer);
    auto written = UpdateSync(*objects_.workspaces, std::move(update));
    if (!written.ok()) return written.status();
    ws = std::move(written->object);
  }
  const absl::Time now = clock_->Now();
  const int64_t generation = ws.metadata().generation();
  const bool tuning = ws.has_tuning();
  const bool auto_provisioned = presets::AutoProvisioned(ws, options_.validation);
  v1::WorkspaceStatus status = ws.status();
  status.set_observed_generation(generation);
  auto* conditions = status.mutable_conditions();
  const std::string old_state = ws.status().state();

  // The offering in use: the workspace's own, or the one capacity fallback moved to.
  v1::Workspace sized = ws;
  if (!status.instance_type().empty()) {
    sized.mutable_resource()->set_instance_type(status.instance_type());
  }
  const presets::Offering offering{
      presets::EffectiveInstanceType(sized),
      status.capacity_type().empty() ? presets::FirstCapacityType(ws) : status.capacity_type()};

  // Sizing: the target node count is recorded once (Kaito: only while 0).
  v1::WorkspacePlan plan =
      presets::PlanWorkspace(*catalog_, options_.validation, *context_, sized);
  if (status.target_node_count() == 0 && plan.sizing_error().empty()) {
    status.set_target_node_count(std::max(1, plan.target_node_count()));
  }
  // A workload's failure, when one failed (filled in below, read by write_status).
  std::string failed_reason, failed_message;
  auto write_status = [&](ReconcileResult result) -> absl::StatusOr<ReconcileResult> {
    if (MessageDifferencer::Equals(status, ws.status())) return result;
    v1::Workspace update = ws;
    *update.mutable_status() = status;
    auto written = UpdateStatusSync(*objects_.workspaces, std::move(update));
    if (!written.ok()) return written.status();
    if (status.state() != old_state) {
      const bool first = old_state != "Ready" && old_state != "NotReady" &&
                         old_state != "Succeeded" &&
                         (status.state() == "Ready" || status.state() == "Succeeded");
      if (first && options_.on_first_ready && ws.metadata().has_creation_timestamp()) {
        options_.on_first_ready(
            ws, absl::ToDoubleSeconds(now - FromTimestamp(ws.metadata().creation_timestamp())));
      }
      if (status.state() == "Ready") {
        events_->Normal(ws, "WorkspaceReady", "Workspace is ready: inference is being served" +
                                                   (status.endpoint().empty()
                                                        ? std::string()
                                                        : " at " + status.endpoint()));
      } else if (status.state() == "Succeeded") {
        events_->Normal(ws, "TuningSucceeded", "The tuning job completed");
      } else if (status.state() == "Failed") {
        if (!failed_reason.empty()) {
          events_->Warning(ws, "WorkloadFailed", failed_reason + ": " + failed_message);
        }
        const v1::Condition* c = FindCondition(status.conditions(), kConditionWorkspaceSucceeded);
        events_->Warning(ws, "WorkspaceFailed", c ? c->message() : "failed");
      }
    }
    return result;
  };
  if (status.target_node_count() == 0) {
    // A valid workspace the catalogs cannot size (e.g. an unknown SKU under Azure's escape
    // rule): final until the spec changes.
    SetCondition(conditions, kConditionResourceReady, false, "SizingFailed", plan.sizing_error(),
                 generation, now);
    SetCondition(conditions, kConditionWorkspaceSucceeded, false, kReasonFailed,
                 plan.sizing_error(), generation, now);
    SetCondition(conditions, kConditionWorkspaceReady, false, kReasonFailed, plan.sizing_error(),
                 generation, now);
    status.set_state("Failed");
    return write_status(ReconcileResult::Done());
  }
  const int target = status.target_node_count();
  const int64_t retries = RetryCount(ws.metadata());

  // Nodes: ready nodes matching the selector (and, for auto-provisioned workspaces, made
  // for this workspace, as Kaito's existing-node matching), preferred nodes first.
  FieldErrors ignored;
  LabelSelectorMatcher selector = LabelSelectorMatcher::FromProto(
      ws.resource().label_selector(), "resource.labelSelector", ignored);
  std::set<std::string> preferred(ws.resource().preferred_nodes().begin(),
                                  ws.resource().preferred_nodes().end());
  auto nodes = objects_.nodes->ListShared("", [&](const v1::Node& n) {
    return selector.Matches(n.metadata().labels()) &&
           (!auto_provisioned || Owns(n.metadata(), ws));
  });
  std::vector<std::shared_ptr<const v1::Node>> ready;
  for (const auto& n : nodes) {
    if (NodeIsReady(*n)) ready.push_back(n);
  }
  std::stable_sort(ready.begin(), ready.end(), [&](const auto& a, const auto& b) {
    return preferred.contains(a->metadata().name()) > preferred.contains(b->metadata().name());
  });

  // A tuning job that has succeeded is done: its lost node is not replaced, nor its
  // workload run again.
  // The workspace's workloads, read once for this reconcile (the claim steps below do not
  // change them).
  const auto workloads = objects_.workloads->ListShared(
      ws.metadata().namespace_(), [&](const v1::Workload& w) { return Owns(w.metadata(), ws); });
  bool tuning_done = false;
  if (tuning) {
    for (const auto& w : workloads) {
      tuning_done |= w->status().phase() == "Succeeded" && !IsDeleting(w->metadata());
    }
  }

  // Node claims (auto-provisioned workspaces only).
  bool resources_failed = false;
  std::string resource_reason = kReasonResourceNotReady, resource_message;
  if (auto_provisioned) {
    auto claims = objects_.nodeclaims->ListShared(
        "", [&](const v1::NodeClaim& c) { return Owns(c.metadata(), ws); });
    std::set<std::string> used_names;
    std::vector<std::shared_ptr<const v1::NodeClaim>> live;
    int ready_claims = 0;
    std::string claim_reason = kReasonNodeClaimNotReady, claim_message;
    // A claim that failed for capacity or quota (its class and message).
    std::string capacity_failure;
    for (const auto& c : claims) {
      used_names.insert(c->metadata().name());
      if (IsDeleting(c->metadata())) continue;
      const auto& cs = c->status();
      auto node = cs.node_name().empty() ? nullptr : objects_.nodes->GetShared("", cs.node_name());
      const bool node_lost = node && NodeIsLost(*node) && !tuning_done;
      const bool failed = cs.phase() == "Failed";
      if ((failed && MadeBeforeRetry(c->metadata(), retries)) || node_lost) {
        // Replaced: a lost node's claim, or a failed claim after a retry request.
        auto deleted = DeleteSync(*objects_.nodeclaims, "", c->metadata().name());
        if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
        events_->Normal(ws, node_lost ? "NodeClaimReplaced" : "NodeClaimRetried",
                        "Node claim " + c->metadata().name() +
                            (node_lost ? " lost its node " + cs.node_name() + "; replacing it"
                                       : " is retried after the workspace was applied again"));
        continue;
      }
      if (failed) {
        if (presets::IsCapacityError(cs.error_code())) {
          capacity_failure = absl::StrCat(cs.error_code(), ": ", cs.message());
        }
        resources_failed = true;
        claim_reason = cs.error_code().empty() ? "NodeClaimFailed" : cs.error_code();
        claim_message = absl::StrCat("node claim ", c->metadata().name(), " failed after ",
                                     Plural(cs.attempts(), "attempt"), ": ", cs.message());
      } else if (!cs.error_code().empty() && claim_message.empty()) {
        claim_reason = cs.error_code();
        claim_message =
            absl::StrCat("node claim ", c->metadata().name(), ": ", cs.message(), " (attempt ",
                         cs.attempts(), " of ", options_.claim_max_attempts, ", retrying)");
      }
      if (cs.phase() == "Ready") ++ready_claims;
      live.push_back(c);
    }
    // Capacity fallback: the offering failed (or is known to be unavailable and nothing
    // was asked of it yet): move to the next one in rank that is not known unavailable.
    if (presets::HasFallback(ws)) {
      std::optional<std::string> unavailable;
      if (!capacity_failure.empty()) {
        unavailable_offerings_.Mark(offering.Key(), capacity_failure);
        if (options_.on_offering_unavailable) options_.on_offering_unavailable(offering);
        unavailable = capacity_failure;
      } else if (live.empty()) {
        unavailable = unavailable_offerings_.Reason(offering.Key());
      }
      if (unavailable) {
        std::optional<presets::Offering> next;
        std::vector<std::string> skipped;
        for (const presets::Offering& o :
             presets::RankOfferings(*catalog_, options_.validation, *context_, ws)) {
          if (o == offering) continue;
          if (std::optional<std::string> reason = unavailable_offerings_.Reason(o.Key())) {
            skipped.push_back(absl::StrCat("Skipped ", o.Describe(),
                                           ": recently unavailable (", *reason, ")"));
            continue;
          }
          next = o;
          break;
        }
        if (next) {
          events_->Warning(ws, "OfferingUnavailable",
                           absl::StrCat(offering.Describe(), " is unavailable: ", *unavailable));
          for (const std::string& line : skipped) events_->Warning(ws, "OfferingSkipped", line);
          events_->Normal(ws, "OfferingChosen",
                          absl::StrCat("Trying ", next->Describe(), " (capacity fallback)"));
          // The claims of the old offering go (their finalizers release any machine).
          for (const auto& c : claims) {
            if (IsDeleting(c->metadata())) continue;
            auto deleted = DeleteSync(*objects_.nodeclaims, "", c->metadata().name());
            if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
          }
          status.set_instance_type(next->instance_type);
          status.set_capacity_type(next->capacity_type);
          status.set_target_node_count(0);  // Sized again for the new instance type.
          const std::string message =
              absl::StrCat(offering.Describe(), " is unavailable (", *unavailable,
                           "); trying ", next->Describe());
          SetCondition(conditions, kConditionNodeClaimReady, false, "OfferingUnavailable",
                       message, generation, now);
          SetCondition(conditions, kConditionResourceReady, false, "OfferingUnavailable",
                       message, generation, now);
          return write_status(ReconcileResult::RequeueAfter(absl::Seconds(1)));
        }
        if (!capacity_failure.empty()) {
          claim_message += "; no other offering allowed by kaito.sh/instance-type-fallback or "
                           "kaito.sh/capacity-type is available";
        }
      }
    }
    int ready_unclaimed = 0;
    for (const auto& n : ready) {
      if (n->spec().node_claim().empty()) ++ready_unclaimed;
    }
    const int needed = std::max(0, target - ready_unclaimed);
    int missing = needed - static_cast<int>(live.size());
    for (int slot = 0; missing > 0 && !resources_failed && slot < 10000; ++slot) {
      const std::string claim_name = ClaimName(ws, slot);
      if (used_names.contains(claim_name)) continue;
      v1::NodeClaim claim;
      claim.mutable_metadata()->set_name(claim_name);
      auto* labels = claim.mutable_metadata()->mutable_labels();
      (*labels)[kLabelWorkspace] = ws.metadata().name();
      (*labels)[kLabelWorkspaceNamespace] = ws.metadata().namespace_();
      claim.mutable_metadata()->add_finalizers(kNodeClaimFinalizer);
      (*claim.mutable_metadata()->mutable_annotations())[kAnnotationRetryRequested] =
          std::to_string(retries);
      if (presets::HasFallback(ws)) {
        (*claim.mutable_metadata()->mutable_annotations())[kAnnotationCapacityFallback] = "true";
      }
      auto* spec = claim.mutable_spec();
      spec->set_instance_type(offering.instance_type);
      if (offering.capacity_type == presets::kCapacitySpot) {
        spec->set_capacity_type(presets::kCapacitySpot);
      }
      for (const auto& [k, v] : ws.resource().label_selector().match_labels()) {
        (*spec->mutable_labels())[k] = v;
      }
      (*spec->mutable_labels())[kLabelWorkspace] = ws.metadata().name();
      (*spec->mutable_labels())[kLabelWorkspaceNamespace] = ws.metadata().namespace_();
      v1::Taint* taint = spec->add_taints();
      taint->set_key("sku");
      taint->set_value("gpu");
      taint->set_effect("NoSchedule");
      const presets::ModelPreset* model = catalog_->FindModel(
          tuning ? ws.tuning().preset().name() : ws.inference().preset().name());
      spec->set_disk_size_gib(model && model->disk_bytes > 0
                                  ? std::max<int64_t>(128, model->disk_bytes / presets::kGiB)
                                  : 1024);
      auto family = ws.metadata().annotations().find(presets::kAnnotationNodeImageFamily);
      spec->set_image_family(family != ws.metadata().annotations().end() ? family->second
                                                                         : "Ubuntu");
      claim.mutable_status()->set_phase("Pending");
      auto created = CreateSync(*objects_.nodeclaims, std::move(claim));
      if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
      used_names.insert(claim_name);
      --missing;
      events_->Normal(ws, "NodeClaimCreated",
                      absl::StrCat("Created node claim ", claim_name, " for a ",
                                   offering.instance_type,
                                   offering.capacity_type == presets::kCapacitySpot ? " spot" : "",
                                   " node"));
    }
    if (resources_failed) {
      SetCondition(conditions, kConditionNodeClaimReady, false, claim_reason, claim_message,
                   generation, now);
      resource_reason = claim_reason;
      resource_message = claim_message;
    } else if (ready_claims >= needed) {
      SetCondition(conditions, kConditionNodeClaimReady, true, kReasonNodeClaimsReady,
                   "all node claims are ready", generation, now);
    } else {
      if (claim_message.empty()) {
        claim_message = absl::StrCat(ready_claims, "/", needed, " node claims are ready");
      }
      SetCondition(conditions, kConditionNodeClaimReady, false, claim_reason, claim_message,
                   generation, now);
      resource_reason = claim_reason;
      resource_message = claim_message;
    }
  }

  const int usable = std::min<int>(target, ready.size());
  if (resources_failed) {
    SetCondition(conditions, kConditionResourceReady, false, resource_reason, resource_message,
                 generation, now);
  } else if (usable >= target) {
    SetCondition(conditions, kConditionResourceReady, true, kReasonResourceSuccess,
                 absl::StrCat(Plural(target, "node"), " ready"), generation, now);
  } else {
    if (resource_message.empty() || resource_reason == kReasonNodeClaimNotReady) {
      resource_message = absl::StrCat(usable, "/", target, " nodes are ready");
      if (!auto_provisioned && ready.empty()) {
        resource_message += "; no ready node matches resource.labelSelector";
      }
    }
    SetCondition(conditions, kConditionResourceReady, false, resource_reason, resource_message,
                 generation, now);
  }

  // Workloads: one per node, placed once nodes are ready; a changed spec rolls them.
  std::map<std::string, std::shared_ptr<const v1::Workload>> by_name;
  for (const auto& w : workloads) by_name[w->metadata().name()] = w;

  // A workload is dropped (and placed again) when its node is lost or gone, or, after a
  // retry request, when it failed.
  for (const auto& w : workloads) {
    if (IsDeleting(w->metadata())) {
      if (absl::Status s = ReleaseIfNodeGone(*w); !s.ok()) return s;
      continue;
    }
    auto node = objects_.nodes->GetShared("", w->spec().node_name());
    const bool node_gone = w->status().phase() != "Succeeded" &&
                           (!node || NodeIsLost(*node) || w->status().phase() == "Lost");
    const bool retry = w->status().phase() == "Failed" && MadeBeforeRetry(w->metadata(), retries);
    if (!node_gone && !retry) continue;
    auto deleted = DeleteSync(*objects_.workloads, w->metadata().namespace_(), w->metadata().name());
    if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
    if (deleted.ok() && !deleted->deleted) {
      if (absl::Status s = ReleaseIfNodeGone(deleted->object); !s.ok()) return s;
    }
    by_name.erase(w->metadata().name());
    if (node_gone) {
      events_->Warning(ws, "WorkloadLost",
                       "Workload " + w->metadata().name() + " lost its node " +
                           w->spec().node_name() + "; it will be placed again");
    }
  }

  const bool rendered = plan.sizing_error().empty() && !plan.workloads().empty();
  if (!resources_failed && usable >= target && rendered) {
    std::set<std::string> taken;
    for (const auto& [n, w] : by_name) {
      if (!IsDeleting(w->metadata())) taken.insert(w->spec().node_name());
    }
    std::vector<std::string> free_nodes;
    for (const auto& n : ready) {
      if (!taken.contains(n->metadata().name())) free_nodes.push_back(n->metadata().name());
    }
    size_t next_free = 0;
    const int64_t grace = ws.has_termination_grace_period_seconds()
                              ? ws.termination_grace_period_seconds()
                              : options_.default_termination_grace_seconds;
    for (int i = 0; i < plan.workloads_size() && i < target; ++i) {
      v1::WorkloadSpec desired = plan.workloads(i);
      // The workspace's own setting, else the template's (a custom template may set it),
      // else the default.
      if (ws.has_termination_grace_period_seconds() ||
          desired.termination_grace_period_seconds() <= 0) {
        desired.set_termination_grace_period_seconds(grace);
      }
      auto existing = by_name.find(desired.name());
      if (existing != by_name.end()) {
        const v1::Workload& w = *existing->second;
        if (IsDeleting(w.metadata())) continue;  // Placed again once it is gone.
        desired.set_node_name(w.spec().node_name());
        if (!MessageDifferencer::Equals(desired, w.spec())) {
          v1::Workload update = w;
          *update.mutable_spec() = desired;
          update.mutable_metadata()->clear_resource_version();
          auto written = UpdateSync(*objects_.workloads, std::move(update));
          if (!written.ok()) return written.status();
          events_->Normal(ws, "WorkloadUpdated",
                          "Workload " + w.metadata().name() + " rolls to the new spec");
          // The status below is computed from what is stored now (`w` is not used after).
          existing->second = std::make_shared<v1::Workload>(written->object);
        }
        continue;
      }
      if (next_free >= free_nodes.size()) break;
      desired.set_node_name(free_nodes[next_free++]);
      v1::Workload workload;
      workload.mutable_metadata()->set_name(desired.name());
      workload.mutable_metadata()->set_namespace_(ws.metadata().namespace_());
      (*workload.mutable_metadata()->mutable_labels())[kLabelWorkspace] = ws.metadata().name();
      (*workload.mutable_metadata()->mutable_labels())[kLabelWorkspaceNamespace] =
          ws.metadata().namespace_();
      workload.mutable_metadata()->add_finalizers(kWorkloadFinalizer);
      (*workload.mutable_metadata()->mutable_annotations())[kAnnotationRetryRequested] =
          std::to_string(retries);
      *workload.mutable_spec() = desired;
      workload.mutable_status()->set_phase("Pending");
      auto created = CreateSync(*objects_.workloads, workload);
      if (!created.ok() && !absl::IsAlreadyExists(created.status())) return created.status();
      if (created.ok()) {
        by_name[desired.name()] = std::make_shared<v1::Workload>(created->object);
        events_->Normal(ws, "WorkloadStarted",
                        absl::StrCat("Workload ", desired.name(), " (", desired.role(),
                                     ") placed on node ", desired.node_name()));
      }
    }
    // Workloads past the target (the node count shrank) are stopped.
    for (const auto& [n, w] : by_name) {
      if (IsDeleting(w->metadata()) || w->spec().index() < target) continue;
      auto deleted = DeleteSync(*objects_.workloads, w->metadata().namespace_(), n);
      if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
    }
  }

  // What the workloads say.
  int workloads_ready = 0, running = 0, succeeded = 0;
  std::string pending_reason, pending_message, endpoint;
  int pending_rank = 100;
  for (const auto& [n, w] : by_name) {
    if (IsDeleting(w->metadata())) continue;
    const v1::WorkloadStatus& s = w->status();
    const bool current_gen = s.observed_generation() == w->metadata().generation();
    if (s.phase() == "Failed" && current_gen) {
      if (failed_reason.empty() || ReasonRank(s.reason()) < ReasonRank(failed_reason)) {
        failed_reason = s.reason().empty() ? "WorkloadFailed" : s.reason();
        failed_message = absl::StrCat("workload ", n, " failed on node ", w->spec().node_name(),
                                      ": ", s.message());
      }
      continue;
    }
    if (s.phase() == "Ready" && current_gen) ++workloads_ready;
    if ((s.phase() == "Running" || s.phase() == "Ready") && current_gen) ++running;
    if (s.phase() == "Succeeded" && current_gen) ++succeeded;
    if (w->spec().index() == 0 && current_gen && s.phase() == "Ready") endpoint = s.endpoint();
    if (!s.reason().empty() && ReasonRank(s.reason()) < pending_rank) {
      pending_rank = ReasonRank(s.reason());
      pending_reason = s.reason();
      pending_message = absl::StrCat("workload ", n, ": ", s.message());
    }
  }
  const bool resource_ready = IsConditionTrue(*conditions, kConditionResourceReady);
  bool failed = resources_failed || !failed_reason.empty();
  std::string failure_message = resources_failed ? resource_message : failed_message;
  if (tuning) {
    RemoveCondition(conditions, kConditionInferenceReady);
    status.clear_endpoint();
    if (!failed_reason.empty()) {
      SetCondition(conditions, kConditionJobStarted, false, kReasonJobFailed, failed_message,
                   generation, now);
    } else if (running > 0 || succeeded > 0) {
      SetCondition(conditions, kConditionJobStarted, true, kReasonJobStarted,
                   "the tuning job has started", generation, now);
    } else {
      SetCondition(conditions, kConditionJobStarted, false,
                   pending_reason.empty() ? kReasonJobPending : pending_reason,
                   pending_message.empty() ? "waiting for the tuning job to start"
                                           : pending_message,
                   generation, now);
    }
    const bool done = succeeded > 0 && !failed;
    if (failed) {
      status.set_state("Failed");
    } else if (done) {
      status.set_state("Succeeded");
    } else if (running > 0) {
      status.set_state("Running");
    } else {
      status.set_state("Pending");
    }
    const std::string message = failed ? failure_message
                                : done ? "the tuning job completed"
                                       : "the tuning job has not completed";
    SetCondition(conditions, kConditionWorkspaceSucceeded, done,
                 failed ? kReasonFailed : done ? kReasonSucceeded : kReasonPending, message,
                 generation, now);
    SetCondition(conditions, kConditionWorkspaceReady, done,
                 failed ? kReasonFailed : done ? kReasonSucceeded : kReasonPending, message,
                 generation, now);
  } else {
    RemoveCondition(conditions, kConditionJobStarted);
    const bool all_ready = resource_ready && workloads_ready >= target;
    if (all_ready) {
      SetCondition(conditions, kConditionInferenceReady, true, kReasonInferenceSuccess,
                   "inference is being served", generation, now);
    } else if (!failed_reason.empty()) {
      SetCondition(conditions, kConditionInferenceReady, false, failed_reason, failed_message,
                   generation, now);
    } else {
      SetCondition(conditions, kConditionInferenceReady, false,
                   pending_reason.empty() ? kReasonInferencePending : pending_reason,
                   pending_message.empty()
                       ? absl::StrCat(workloads_ready, "/", target, " workloads are ready")
                       : pending_message,
                   generation, now);
    }
    status.set_endpoint(all_ready ? endpoint : "");
    const bool ready_before = old_state == "Ready" || old_state == "NotReady";
    if (failed) {
      status.set_state("Failed");
    } else if (all_ready) {
      status.set_state("Ready");
    } else {
      status.set_state(ready_before ? "NotReady" : "Pending");
    }
    const std::string message = failed ? failure_message
                                : all_ready ? "the workspace is ready"
                                            : "the workspace is not ready yet";
    const char* reason = failed ? kReasonFailed : all_ready ? kReasonSucceeded : kReasonPending;
    SetCondition(conditions, kConditionWorkspaceSucceeded, all_ready, reason, message, generation,
                 now);
    SetCondition(conditions, kConditionWorkspaceReady, all_ready, reason, message, generation,
                 now);
  }

  std::vector<std::string> worker_nodes;
  for (const auto& [n, w] : by_name) {
    if (!IsDeleting(w->metadata())) worker_nodes.push_back(w->spec().node_name());
  }
  std::sort(worker_nodes.begin(), worker_nodes.end());
  status.clear_worker_nodes();
  for (auto& n : worker_nodes) status.add_worker_nodes(std::move(n));
  return write_status(ReconcileResult::RequeueAfter(options_.resync));
}

absl::StatusOr<ReconcileResult> WorkspaceReconciler::Finalize(const v1::Workspace& ws) {
  const absl::Time now = clock_->Now();
  // Stop the workloads; their agents confirm, or the node is gone.
  auto workloads = objects_.workloads->ListShared(
      ws.metadata().namespace_(), [&](const v1::Workload& w) { return Owns(w.metadata(), ws); });
  for (const auto& w : workloads) {
    if (!IsDeleting(w->metadata())) {
      auto deleted =
          DeleteSync(*objects_.workloads, w->metadata().namespace_(), w->metadata().name());
      if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
      continue;
    }
    if (absl::Status s = ReleaseIfNodeGone(*w); !s.ok()) return s;
  }
  const size_t remaining_workloads = objects_.workloads->ListShared(
      ws.metadata().namespace_(), [&](const v1::Workload& w) { return Owns(w.metadata(), ws); })
                                         .size();
  // The machines go only once their workloads have stopped (a stopping inference server
  // finishes its requests on its node).
  if (remaining_workloads == 0) {
    auto claims = objects_.nodeclaims->ListShared(
        "", [&](const v1::NodeClaim& c) { return Owns(c.metadata(), ws); });
    for (const auto& c : claims) {
      if (IsDeleting(c->metadata())) continue;
      auto deleted = DeleteSync(*objects_.nodeclaims, "", c->metadata().name());
      if (!deleted.ok() && !absl::IsNotFound(deleted.status())) return deleted.status();
    }
  }
  const size_t remaining_claims =
      objects_.nodeclaims->ListShared("", [&](const v1::NodeClaim& c) {
        return Owns(c.metadata(), ws);
      }).size();
  if (remaining_workloads == 0 && remaining_claims == 0) {
    if (!HasFinalizer(ws.metadata(), kWorkspaceFinalizer)) return ReconcileResult::Done();
    v1::Workspace update = ws;
    RemoveFinalizer(update.mutable_metadata(), kWorkspaceFinalizer);
    update.mutable_metadata()->clear_resource_version();
    auto written = UpdateSync(*objects_.workspaces, std::move(update));
    if (!written.ok() && !absl::IsNotFound(written.status())) return written.status();
    return ReconcileResult::Done();
  }
  v1::WorkspaceStatus status = ws.status();
  status.set_state("Deleting");
  SetCondition(status.mutable_conditions(), kConditionWorkspaceDeleting, true, "workspaceDeleting",
               absl::StrCat("waiting for ", Plural(remaining_workloads, "workload"), " and ",
                            Plural(remaining_claims, "node claim"), " to be released"),
               ws.metadata().generation(), now);
  if (!MessageDifferencer::Equals(status, ws.status())) {
    v1::Workspace update = ws;
    *update.mutable_status() = status;
    update.mutable_metadata()->clear_resource_version();
    auto written = UpdateStatusSync(*objects_.workspaces, std::move(update));
    if (!written.ok() && !absl::IsNotFound(written.status())) return written.status();
  }
  // Watches of the workloads and claims bring it back; the requeue is a safety net.
  return ReconcileResult::RequeueAfter(absl::Seconds(5));
}

}  // namespace kaito::server
