// The garbage collector: removes what no workspace owns any more (node claims and
// workloads whose workspace is gone, as Kubernetes' owner-reference GC does) and events
// past their TTL. Runs every `period` on the clock's timer and hands the work to its
// controller's queue under the key "sweep".
#pragma once

#include "absl/time/time.h"
#include "common/clock.h"
#include "server/controller/reconciler.h"
#include "server/controllers/objects.h"

namespace kaito::server {

struct GarbageCollectorOptions {
  absl::Duration period = absl::Minutes(1);
  absl::Duration event_ttl = absl::Hours(1);
};

class GarbageCollector : public Reconciler {
 public:
  GarbageCollector(ControlPlaneObjects objects, Clock* clock, GarbageCollectorOptions options)
      : objects_(objects), clock_(clock), options_(options) {}

  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override;

  const GarbageCollectorOptions& options() const { return options_; }

 private:
  ControlPlaneObjects objects_;
  Clock* const clock_;
  const GarbageCollectorOptions options_;
};

}  // namespace kaito::server
