// The node claim controller: turns each NodeClaim into a machine through the provisioner
// and follows it until its node's agent has registered; on delete, releases the machine
// and the Node object before it lets the claim go.
//
// Provisioner calls are asynchronous: a reconcile starts a call (at most one in flight per
// claim), returns at once, and the call's completion writes what it learned into the
// claim's status (whose watch brings the claim back). Failed creates are retried with
// capped exponential backoff up to `max_attempts`, counted in status.attempts, so that the
// count survives restarts; after the last one the claim is Failed for good.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "server/controller/reconciler.h"
#include "server/controllers/event_recorder.h"
#include "server/controllers/objects.h"
#include "server/provisioning/provisioner_client.h"

namespace kaito::server {

struct NodeClaimControllerOptions {
  int max_attempts = 3;
  absl::Duration retry_base = absl::Seconds(10);
  absl::Duration retry_cap = absl::Minutes(5);
  // How often a claim whose machine is being created is polled.
  absl::Duration poll_interval = absl::Seconds(1);
  // The address the nodes' agents dial (HOST:PORT), for the provisioner's bootstrap.
  std::string agent_server;
};

class NodeClaimReconciler : public Reconciler {
 public:
  // `enqueue` puts a claim's key back on the controller's queue (completions use it).
  NodeClaimReconciler(ControlPlaneObjects objects, ProvisionerClient* provisioner,
                      EventRecorder* events, Clock* clock, NodeClaimControllerOptions options,
                      std::function<void(const std::string&)> enqueue)
      : objects_(objects),
        provisioner_(provisioner),
        events_(events),
        clock_(clock),
        options_(std::move(options)),
        enqueue_(std::move(enqueue)) {}

  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override;

  // The delay before attempt `attempts + 1` after `attempts` failures.
  absl::Duration Backoff(int attempts) const;

 private:
  absl::StatusOr<ReconcileResult> Release(const v1::NodeClaim& claim);
  // Records a provider reply in the claim's status (completion thread: async writes only).
  void Observe(const std::string& name, const v1::ProvisionedNode& node);
  bool StartCall(const std::string& name);
  void EndCall(const std::string& name);

  ControlPlaneObjects objects_;
  ProvisionerClient* const provisioner_;
  EventRecorder* const events_;
  Clock* const clock_;
  const NodeClaimControllerOptions options_;
  const std::function<void(const std::string&)> enqueue_;
  absl::Mutex mu_;
  std::set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
  // Claims whose machine the provisioner reported gone, not yet finalized.
  std::set<std::string> released_ ABSL_GUARDED_BY(mu_);
  // The attempt each claim's CreateNode was issued for.
  std::map<std::string, int> created_attempt_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
