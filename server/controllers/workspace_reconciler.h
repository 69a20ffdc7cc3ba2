// The workspace controller: level-triggered, as controller-runtime's. Each Reconcile reads
// the workspace, its node claims, the nodes and its workloads fresh from the caches, makes
// one step towards the desired state (finalizer, node count, claims, workloads), and
// writes the status that describes what it saw. It never waits for a cloud operation, a
// node or a container: it records what it asked for and returns; the watch of the object
// it wrote (or a requeue-after) brings it back.
//
// Ownership: the controller's workers call Reconcile; the work queue guarantees that one
// workspace is never reconciled by two workers at once. Writes wait for the store only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "presets/catalog.h"
#include "presets/offerings.h"
#include "presets/renderer.h"
#include "presets/workspace_validator.h"
#include "server/controller/reconciler.h"
#include "server/controllers/event_recorder.h"
#include "server/controllers/objects.h"
#include "server/controllers/unavailable_offerings.h"

namespace kaito::server {

struct WorkspaceControllerOptions {
  presets::ValidationOptions validation;
  presets::RenderOptions render;
  // Create attempts of one node claim before the workspace is Failed (the node claim
  // controller counts them; the workspace reads them).
  int claim_max_attempts = 3;
  // A workspace is looked at again this often even when nothing changed (safety net).
  absl::Duration resync = absl::Seconds(30);
  // Inference workloads' default stop grace, as Kubernetes' pods.
  int64_t default_termination_grace_seconds = 30;
  // How long an offering that failed for capacity or quota is skipped by capacity fallback.
  absl::Duration unavailable_offering_ttl = absl::Minutes(3);
  // Told the seconds from a workspace's creation to its first Ready (or Succeeded, for
  // tuning), once the status saying so is written (metrics).
  std::function<void(const v1::Workspace&, double seconds)> on_first_ready;
  // Told of each offering capacity fallback marks unavailable (metrics).
  std::function<void(const presets::Offering&)> on_offering_unavailable;
};

// Node claims of a workspace with capacity fallback carry this annotation ("true"): a
// capacity or quota failure then ends the claim at once, so the next offering is tried.
inline constexpr char kAnnotationCapacityFallback[] = "kaito.sh/capacity-fallback";

class WorkspaceReconciler : public Reconciler {
 public:
  WorkspaceReconciler(ControlPlaneObjects objects, const presets::Catalog* catalog,
                      presets::ValidationContext* context, EventRecorder* events, Clock* clock,
                      WorkspaceControllerOptions options)
      : objects_(objects),
        catalog_(catalog),
        context_(context),
        events_(events),
        clock_(clock),
        options_(std::move(options)),
        unavailable_offerings_(clock, options_.unavailable_offering_ttl) {}

  // `key` is "namespace/name".
  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override;

  // The name of the `slot`-th node claim of a workspace: "ws" and ten hex digits, so that
  // it is also a valid AKS agent-pool name (^[a-z][a-z0-9]{0,11}$). Deterministic, so a
  // retried or restarted reconcile never makes a second claim for the same slot.
  static std::string ClaimName(const v1::Workspace& ws, int slot);

 private:
  absl::StatusOr<ReconcileResult> Finalize(const v1::Workspace& ws);
  absl::Status ReleaseIfNodeGone(const v1::Workload& workload);

  ControlPlaneObjects objects_;
  const presets::Catalog* catalog_;
  presets::ValidationContext* context_;
  EventRecorder* events_;
  Clock* clock_;
  const WorkspaceControllerOptions options_;
  UnavailableOfferings unavailable_offerings_;
};

// What the controllers consider a usable node: Ready and not being deleted.
bool NodeIsReady(const v1::Node& node);
// A node whose agent lapsed past the grace period (the node lifecycle controller says so
// with Ready=False, reason NodeLost).
bool NodeIsLost(const v1::Node& node);

}  // namespace kaito::server
