// The one seam a controller calls: level-triggered `Reconcile(key)`, as controller-runtime's
// `reconcile.Reconciler`.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kaito::server {

// What a successful reconcile asks for next.
struct ReconcileResult {
  // Zero: the key is done until an event enqueues it again. Positive: reconcile it again
  // after this long (the key's backoff is reset first).
  absl::Duration requeue_after = absl::ZeroDuration();

  static ReconcileResult Done() { return ReconcileResult{}; }
  static ReconcileResult RequeueAfter(absl::Duration d) { return ReconcileResult{d}; }
};

// Brings the world in line with the desired state of one key. The contract:
// - It reads desired and observed state fresh each time; it never relies on why it was
//   called (events may be merged or dropped; only the latest state counts).
// - It never blocks waiting for a cloud operation, a node or a container: it records what
//   it asked for and returns `RequeueAfter`, so that one slow key never holds a worker.
// - It is called for one key by at most one thread at a time, but for different keys from
//   several threads at once, so shared state it touches must be thread-safe.
// - It returns an error status to be retried with the key's exponential backoff; it never
//   throws.
class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) = 0;
};

}  // namespace kaito::server
