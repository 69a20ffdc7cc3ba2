// The node lifecycle controller: turns lapsed agent leases into node conditions, as
// Kubernetes' node lifecycle controller does. A node whose lease is older than the TTL is
// Ready=False (NodeStatusUnknown); after `lost_grace` more it is lost (Ready=False,
// reason NodeLost) and the workloads placed on it are marked Lost, so that the workspace
// controller places them again and replaces the node's claim. Marking nodes lost is
// rate-limited (a token bucket), so a network blip that lapses many leases at once does
// not become a storm of rescheduling.
//
// Only nodes registered by an agent (annotation kaito.sh/agent-managed) are managed; a
// bring-your-own node written by an operator keeps the conditions the operator wrote.
#pragma once

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/agents/lease_tracker.h"
#include "server/controller/reconciler.h"
#include "server/controllers/event_recorder.h"
#include "server/controllers/objects.h"

namespace kaito::server {

struct NodeLifecycleOptions {
  absl::Duration lost_grace = absl::Seconds(30);
  // Nodes marked lost per second, at most, with a burst of `lost_burst`.
  double lost_per_second = 1.0;
  int lost_burst = 10;
};

class NodeLifecycleReconciler : public Reconciler {
 public:
  NodeLifecycleReconciler(ControlPlaneObjects objects, LeaseTracker* leases,
                          EventRecorder* events, Clock* clock, NodeLifecycleOptions options)
      : objects_(objects),
        leases_(leases),
        events_(events),
        clock_(clock),
        options_(options),
        tokens_(options.lost_burst),
        refilled_(clock->Monotonic()) {}

  // `key` is the node name.
  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override;

 private:
  // Takes a token, or returns how long until one is there.
  absl::Duration TakeToken();

  ControlPlaneObjects objects_;
  LeaseTracker* const leases_;
  EventRecorder* const events_;
  Clock* const clock_;
  const NodeLifecycleOptions options_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Duration refilled_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
