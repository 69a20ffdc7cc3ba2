#include "server/controllers/garbage_collector.h"

#include <spdlog/spdlog.h>

#include "server/controllers/conditions.h"
#include "server/registry/sync_writes.h"

namespace kaito::server {
namespace {

// The workspace an object belongs to is gone (not merely being deleted).
bool Orphaned(const v1::ObjectMeta& meta, ObjectRegistry<v1::Workspace>* workspaces) {
  auto name = meta.labels().find(kLabelWorkspace);
  auto ns = meta.labels().find(kLabelWorkspaceNamespace);
  if (name == meta.labels().end() || ns == meta.labels().end()) return false;
  return workspaces->GetShared(ns->second, name->second) == nullptr;
}

}  // namespace

absl::StatusOr<ReconcileResult> GarbageCollector::Reconcile(const std::string&) {
  int removed = 0;
  for (const auto& c : objects_.nodeclaims->ListShared("")) {
    if (c->metadata().has_deletion_timestamp() || !Orphaned(c->metadata(), objects_.workspaces)) {
      continue;
    }
    // The claim's finalizer makes the node claim controller release the machine first.
    auto r = DeleteSync(*objects_.nodeclaims, "", c->metadata().name());
    if (r.ok()) ++removed;
  }
  for (const auto& w : objects_.workloads->ListShared("")) {
    if (!Orphaned(w->metadata(), objects_.workspaces)) continue;
    if (!w->metadata().has_deletion_timestamp()) {
      auto r = DeleteSync(*objects_.workloads, w->metadata().namespace_(), w->metadata().name());
      if (r.ok()) ++removed;
      continue;
    }
    // Orphaned and being deleted: nobody waits for its agent any more.
    v1::Workload update = *w;
    RemoveFinalizer(update.mutable_metadata(), kWorkloadFinalizer);
    update.mutable_metadata()->clear_resource_version();
    (void)UpdateSync(*objects_.workloads, std::move(update));
  }
  const absl::Time cutoff = clock_->Now() - options_.event_ttl;
  for (const auto& e : objects_.events->ListShared("")) {
    if (FromTimestamp(e->last_timestamp()) >= cutoff) continue;
    auto r = DeleteSync(*objects_.events, e->metadata().namespace_(), e->metadata().name());
    if (r.ok()) ++removed;
  }
  if (removed > 0) spdlog::info("garbage collector: removed {} objects", removed);
  if (provisioner_ != nullptr) CollectOrphanedMachines();
  return ReconcileResult::RequeueAfter(options_.period);
}

void GarbageCollector::CollectOrphanedMachines() {
  if (listing_.exchange(true)) return;
  provisioner_->ListNodes([this](absl::StatusOr<std::vector<v1::ProvisionedNode>> nodes) {
    if (!nodes.ok()) {
      spdlog::debug("garbage collector: listing the provisioner's machines: {}",
                    nodes.status().ToString());
      listing_ = false;
      return;
    }
    const absl::Time cutoff = clock_->Now() - options_.orphan_grace;
    for (const v1::ProvisionedNode& node : *nodes) {
      if (node.phase() == "Deleting" || !node.has_created_time() ||
          FromTimestamp(node.created_time()) > cutoff ||
          objects_.nodeclaims->GetShared("", node.claim_name()) != nullptr) {
        continue;
      }
      spdlog::warn("garbage collector: machine {} ({}) has no node claim; deleting it",
                   node.claim_name(), node.instance_type());
      if (options_.on_orphan_collected) options_.on_orphan_collected();
      provisioner_->DeleteNode(node.claim_name(), [name = node.claim_name()](
                                                      absl::StatusOr<bool> gone) {
        if (!gone.ok()) {
          spdlog::warn("garbage collector: deleting machine {}: {}", name,
                       gone.status().ToString());
        }
      });
    }
    listing_ = false;
  });
}

}  // namespace kaito::server
