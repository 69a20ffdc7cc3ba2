// A controller: a fixed pool of workers that take keys from one `WorkQueue` and call one
// `Reconciler`, turning each result into the next step for the key, with metrics.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/controller/rate_limiter.h"
#include "server/controller/reconciler.h"
#include "server/controller/work_queue.h"

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace kaito::server {

struct ControllerOptions {
  // Worker threads, each reconciling one key at a time; at least 1.
  int workers = 4;
  // Backoff of keys whose reconcile failed.
  RateLimiterOptions rate_limiter;
  // When set, each reconcile runs inside it (it must call its argument once, on the same
  // thread): the leader election puts the leader's write fence in scope this way.
  std::function<void(const std::function<void()>& reconcile)> around_reconcile;
};

// The metric families shared by every controller on one registry (defined in
// controller.cc).
class ControllerMetrics;

// Runs `reconciler` for the keys enqueued, as controller-runtime's controller does:
// - A key is never reconciled by two workers at once (the `WorkQueue` guarantees it), and
//   a key enqueued while it is being reconciled is reconciled once more afterwards.
// - The result decides what follows: an error status retries the key with its per-key
//   backoff (`AddRateLimited`); `Done` forgets the key's backoff; `RequeueAfter(d)`
//   forgets it and enqueues the key again after `d` on the clock.
// - A slow reconcile holds only its own worker; the others go on with other keys.
//
// Metrics (when `registry` is not null), families created once per registry and shared by
// every controller on it, told apart by label: `kaito_workqueue_depth{name}`,
// `kaito_workqueue_adds_total{name}`, `kaito_workqueue_retries_total{name}`,
// `kaito_workqueue_queue_duration_seconds{name}`, `kaito_workqueue_work_duration_seconds{name}`,
// `kaito_reconcile_total{controller,result}` (result: success, requeue_after, error) and
// `kaito_reconcile_errors_total{controller}`.
//
// Ownership: `reconciler`, `clock` and `registry` are not owned and must outlive the
// controller. The controller owns its queue and its worker threads. `Enqueue*` are
// thread-safe and may be called from anywhere, reconciles included; `Start` and `Stop`
// must never be called from a reconcile (`Stop` would join its own thread).
class Controller {
 public:
  Controller(std::string name, Reconciler* reconciler, Clock* clock, ControllerOptions options,
             prometheus::Registry* registry);
  // Stops the controller (see `Stop`).
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the worker threads. Keys enqueued before are reconciled once it starts. Calls
  // after the first, or after `Stop`, do nothing.
  void Start();
  // Shuts the queue down (keys still queued or waiting are abandoned), waits for the
  // reconciles in progress to return and joins the workers. Idempotent; a concurrent
  // second call returns once the workers are joined.
  void Stop();

  // Leadership: a paused controller takes no new key (keys queued meanwhile wait, deduplicated
  // as ever); `Pause` returns once no reconcile is in progress. `Resume` lets the workers go on.
  // A controller may start paused. Neither may be called from a reconcile.
  void Pause();
  void Resume();
  bool paused();

  void Enqueue(const std::string& key) { queue_.Add(key); }
  void EnqueueAfter(const std::string& key, absl::Duration delay) { queue_.AddAfter(key, delay); }

  const std::string& name() const { return name_; }
  WorkQueue& queue() { return queue_; }

 private:
  void RunWorker();
  void ReconcileKey(const std::string& key);

  const std::string name_;
  Reconciler* const reconciler_;
  const ControllerOptions options_;
  // Null without a registry; then the counters below are null too. Declared before
  // `queue_`, which is built with the families' work-queue metrics.
  const std::shared_ptr<ControllerMetrics> metrics_;
  prometheus::Counter* const reconcile_success_;
  prometheus::Counter* const reconcile_requeue_after_;
  prometheus::Counter* const reconcile_error_;
  prometheus::Counter* const reconcile_errors_;
  WorkQueue queue_;

  // Held for the whole of `Start` and `Stop`, joins included; workers never take it.
  absl::Mutex lifecycle_mu_;
  bool started_ ABSL_GUARDED_BY(lifecycle_mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(lifecycle_mu_) = false;
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(lifecycle_mu_);

  // The pause gate, taken by workers between getting a key and reconciling it.
  bool MayReconcile() const ABSL_SHARED_LOCKS_REQUIRED(gate_mu_) { return !paused_ || stopping_; }
  bool Idle() const ABSL_SHARED_LOCKS_REQUIRED(gate_mu_) { return active_ == 0; }
  absl::Mutex gate_mu_;
  bool paused_ ABSL_GUARDED_BY(gate_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(gate_mu_) = false;
  int active_ ABSL_GUARDED_BY(gate_mu_) = 0;
};

}  // namespace kaito::server
