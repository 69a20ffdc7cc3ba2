// The node claim controller: turns each NodeClaim into a machine through the provisioner
// and follows it until its node's agent has registered; on delete, releases the machine
// and the Node object before it lets the claim go.
//
// Provisioner calls are asynchronous: a reconcile starts a call (at most one in flight per
// claim), returns at once, and the call's completion writes what it learned into the
// claim's status (whose watch brings the claim back). Failed creates are retried with
// capped exponential backoff up to `max_attempts`, counted in status.attempts, so that the
// count survives restarts; after the last one the claim is Failed for good.
//
// A machine is only useful once its node is initialized: its agent registered, the node is
// Ready, and it reports the GPUs of its instance type. One that is not initialized within
// `initialization_timeout` of its creation (no agent ever dialled in, or the GPUs never
// appeared: a driver that did not load, a bad image) is repaired: the machine is released
// and created again as the next attempt, or, with the attempts spent, the claim fails with
// RegistrationTimeout or NodeNotInitialized. A node once initialized is never timed out
// (its later health is the node lifecycle controller's).
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
  // From the machine's creation until its node must be initialized; zero: no limit.
  absl::Duration initialization_timeout = absl::Minutes(15);
  // The GPUs a node of an instance type has (0 when unknown: not checked).
  std::function<int(const std::string& instance_type)> expected_gpus;
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
  // Follows a created machine's node until it is initialized, then its readiness.
  absl::StatusOr<ReconcileResult> Follow(const v1::NodeClaim& claim, absl::Time now);
  // Releases a machine whose node was not initialized in time, then retries or fails.
  absl::StatusOr<ReconcileResult> Repair(const v1::NodeClaim& claim, const std::string& code,
                                         const std::string& message, absl::Time now);
  // Asks the provisioner to release the claim's machine (one call at a time); true once it
  // reported the machine gone (consumed by the caller).
  bool ReleaseMachine(const v1::NodeClaim& claim);
  // "CODE: message (attempt N of M; retrying in D)" or "(attempt N, giving up)".
  std::string FailureText(const v1::NodeClaimStatus& s) const;
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
  // Claims whose machine the provisioner reported gone, not yet finalized (or repaired).
  std::set<std::string> released_ ABSL_GUARDED_BY(mu_);
  // The attempt each claim's CreateNode was issued for.
  std::map<std::string, int> created_attempt_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
