#include "server/controllers/node_lifecycle_reconciler.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "server/controllers/conditions.h"
#include "server/registry/sync_writes.h"

namespace kaito::server {

absl::Duration NodeLifecycleReconciler::TakeToken() {
  absl::MutexLock lock(&mu_);
  const absl::Duration now = clock_->Monotonic();
  tokens_ = std::min<double>(options_.lost_burst,
                             tokens_ + absl::ToDoubleSeconds(now - refilled_) *
                                           options_.lost_per_second);
  refilled_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return absl::ZeroDuration();
  }
  return absl::Seconds((1 - tokens_) / std::max(options_.lost_per_second, 1e-3));
}

absl::StatusOr<ReconcileResult> NodeLifecycleReconciler::Reconcile(const std::string& key) {
  auto node = objects_.nodes->GetShared("", key);
  if (!node) {
    leases_->Forget(key);
    return ReconcileResult::Done();
  }
  auto managed = node->metadata().annotations().find(kAnnotationAgentManaged);
  if (managed == node->metadata().annotations().end() || managed->second != "true") {
    return ReconcileResult::Done();
  }
  const absl::Duration now = clock_->Monotonic();
  const absl::Duration expiry = leases_->LastRenewal(key) + leases_->ttl();
  const v1::Condition* ready = FindCondition(node->status().conditions(), "Ready");
  if (now < expiry) {
    // Held. A node this controller made NotReady (its agent stalled but kept its stream, so
    // no new Hello comes) is Ready again; other reasons (an unhealthy GPU) are the agent's.
    if (ready != nullptr && ready->status() != "True" &&
        (ready->reason() == "NodeStatusUnknown" || ready->reason() == "NodeLost")) {
      v1::Node update = *node;  // Conditional on what was read.
      SetCondition(update.mutable_status()->mutable_conditions(), "Ready", true, "AgentReady",
                   "the node's agent renews its lease again", 0, clock_->Now());
      auto written = UpdateStatusSync(*objects_.nodes, std::move(update));
      if (!written.ok()) return written.status();
      events_->Normal(*node, "NodeReady", "Node " + key + " renews its lease again");
    }
    return ReconcileResult::RequeueAfter(expiry - now);
  }
  const absl::Duration lost_at = expiry + options_.lost_grace;
  const bool lost = ready != nullptr && ready->reason() == "NodeLost";
  if (now < lost_at) {
    if (ready == nullptr || ready->status() == "True" || ready->reason() != "NodeStatusUnknown") {
      if (lost) return ReconcileResult::Done();
      v1::Node update = *node;  // Conditional: a Hello meanwhile wins.
      SetCondition(update.mutable_status()->mutable_conditions(), "Ready", false,
                   "NodeStatusUnknown",
                   absl::StrCat("the node's agent stopped renewing its lease (TTL ",
                                absl::FormatDuration(leases_->ttl()), ")"),
                   0, clock_->Now());
      auto written = UpdateStatusSync(*objects_.nodes, std::move(update));
      if (!written.ok()) return written.status();
      events_->Warning(*node, "NodeNotReady",
                       "Node " + key + " stopped renewing its lease; it is NotReady");
      spdlog::warn("node {}: lease lapsed; NotReady", key);
    }
    return ReconcileResult::RequeueAfter(lost_at - now);
  }
  if (lost) return ReconcileResult::Done();
  if (absl::Duration wait = TakeToken(); wait > absl::ZeroDuration()) {
    return ReconcileResult::RequeueAfter(wait);
  }
  // Lost: its workloads are placed again elsewhere.
  v1::Node update = *node;  // Conditional: a Hello meanwhile wins.
  SetCondition(update.mutable_status()->mutable_conditions(), "Ready", false, "NodeLost",
               absl::StrCat("no lease renewal for ",
                            absl::FormatDuration(leases_->ttl() + options_.lost_grace),
                            "; its workloads are placed again"),
               0, clock_->Now());
  auto written = UpdateStatusSync(*objects_.nodes, std::move(update));
  if (!written.ok()) return written.status();
  events_->Warning(*node, "NodeLost", "Node " + key + " is lost; its workloads are placed again");
  spdlog::warn("node {}: lost", key);
  for (const auto& w : objects_.workloads->ListShared(
           "", [&](const v1::Workload& w) { return w.spec().node_name() == key; })) {
    const std::string& phase = w->status().phase();
    if (phase == "Succeeded" || phase == "Lost") continue;
    v1::Workload lost_workload = *w;  // Conditional, and only for this incarnation (uid).
    lost_workload.mutable_status()->set_phase("Lost");
    lost_workload.mutable_status()->set_reason("NodeLost");
    lost_workload.mutable_status()->set_message("node " + key + " is lost");
    auto marked = UpdateStatusSync(*objects_.workloads, std::move(lost_workload));
    if (!marked.ok() && !absl::IsNotFound(marked.status())) return marked.status();
  }
  return ReconcileResult::Done();
}

}  // namespace kaito::server
