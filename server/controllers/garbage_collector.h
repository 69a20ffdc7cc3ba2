// The garbage collector: removes what no workspace owns any more (node claims and
// workloads whose workspace is gone, as Kubernetes' owner-reference GC does) and events
// past their TTL. Runs every `period` on the clock's timer and hands the work to its
// controller's queue under the key "sweep". With a provisioner it also collects orphaned
// machines: those the provisioner lists (only its own: the Azure provider lists only pools
// it created) that no node claim names.
#pragma once

#include <atomic>
#include <functional>

#include "absl/time/time.h"
#include "common/clock.h"
#include "server/controller/reconciler.h"
#include "server/controllers/objects.h"
#include "server/provisioning/provisioner_client.h"

namespace kaito::server {

struct GarbageCollectorOptions {
  absl::Duration period = absl::Minutes(1);
  absl::Duration event_ttl = absl::Hours(1);
  // A machine the provisioner lists with no node claim, created longer ago than this, is
  // deleted (a claim released while the provisioner was unreachable, a control plane whose
  // store was lost). Machines without a creation time are never collected.
  absl::Duration orphan_grace = absl::Minutes(2);
  // Told of each orphaned machine it asks the provisioner to delete (metrics).
  std::function<void()> on_orphan_collected;
};

class GarbageCollector : public Reconciler {
 public:
  // `provisioner` may be null (bring-your-own nodes): no machine is collected then.
  GarbageCollector(ControlPlaneObjects objects, Clock* clock, GarbageCollectorOptions options,
                   ProvisionerClient* provisioner = nullptr)
      : objects_(objects), clock_(clock), options_(options), provisioner_(provisioner) {}

  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override;

  const GarbageCollectorOptions& options() const { return options_; }

 private:
  // Lists the provisioner's machines and deletes the orphans (asynchronously; one listing
  // at a time).
  void CollectOrphanedMachines();

  ControlPlaneObjects objects_;
  Clock* const clock_;
  const GarbageCollectorOptions options_;
  ProvisionerClient* const provisioner_;
  std::atomic<bool> listing_{false};
};

}  // namespace kaito::server
