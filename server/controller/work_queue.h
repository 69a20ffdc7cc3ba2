// The de-duplicating, delaying, rate-limited queue of keys that controllers work from, with
// client-go's `workqueue` semantics (the queue / dirty / processing sets).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/controller/rate_limiter.h"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
}  // namespace prometheus

namespace kaito::server {

// Where a `WorkQueue` reports what it does. Every pointer may be null (not measured); the
// metrics are not owned and must outlive the queue. prometheus-cpp metrics are thread-safe
// and never block for long, so the queue updates them from any thread.
struct WorkQueueMetrics {
  // Keys waiting in the queue (not the delayed ones, not those being processed).
  prometheus::Gauge* depth = nullptr;
  // Adds that put a key in the queue; de-duplicated adds are not counted.
  prometheus::Counter* adds = nullptr;
  // Delayed adds (`AddAfter`, `AddRateLimited`) accepted, as client-go counts retries.
  prometheus::Counter* retries = nullptr;
  // Seconds from the add that queued a key to the `Get` that handed it out.
  prometheus::Histogram* queue_duration = nullptr;
  // Seconds from `Get` to `Done`.
  prometheus::Histogram* work_duration = nullptr;
};

// A queue of keys with these guarantees:
// - A key is in the queue at most once however many times it is added (de-duplication).
// - A key handed out by `Get` is "processing" until `Done(key)`; adding it meanwhile marks
//   it dirty, and it is queued again only at `Done`, once. So no two callers of `Get` ever
//   hold the same key at the same time.
// - `AddAfter` arms a timer on the injected `Clock`; for a key already waiting, the earlier
//   time wins and the later timer is cancelled (or never armed).
// - After `ShutDown`, adds are dropped, pending timers are cancelled, and `Get` returns
//   `nullopt` at once even when keys are still queued (they are abandoned, not drained).
//
// Thread-safe. The queue's lock is held briefly and never across a caller's code; timer
// callbacks only take the lock and move a key into the queue. `clock` is not owned and
// must outlive the queue. Destroying the queue shuts it down and waits for a timer
// callback that is running.
class WorkQueue {
 public:
  explicit WorkQueue(Clock* clock, RateLimiterOptions rate_limiter_options = {},
                     WorkQueueMetrics metrics = {});
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Queues `key` unless it is already queued; if it is processing, marks it to be queued
  // again at `Done`. Dropped after `ShutDown`.
  void Add(const std::string& key);
  // Adds `key` once `delay` has passed on the clock; at once when `delay` <= 0. If `key`
  // is already waiting, keeps whichever of the two times is earlier.
  void AddAfter(const std::string& key, absl::Duration delay);
  // `AddAfter(key, limiter.When(key))`: counts a failure of `key` and retries it with
  // backoff.
  void AddRateLimited(const std::string& key);
  // Resets `key`'s backoff (call when it was processed successfully). Does not remove it
  // from the queue or cancel a waiting timer.
  void Forget(const std::string& key);
  // Failures of `key` since it was last forgotten.
  int NumRequeues(const std::string& key);

  // Blocks until a key is queued and returns it, now processing; returns `nullopt` once
  // the queue is shut down. The caller must call `Done(key)` for every key it gets.
  std::optional<std::string> Get();
  // Ends the processing of `key`; if it was added meanwhile, queues it again.
  void Done(const std::string& key);

  // Drops further adds, cancels pending timers and wakes every `Get`. Idempotent.
  void ShutDown();
  bool ShuttingDown();

  // Keys queued (not waiting on a timer, not processing).
  int Len();
  // Keys waiting on an `AddAfter` timer.
  int NumWaiting();

 private:
  // Outlives the queue when a timer callback holds it, so that a callback that the clock
  // has already started never touches a destroyed queue: the destructor clears `queue`
  // under `mu`, and a callback runs only while `queue` is set and `mu` is held.
  struct TimerTarget {
    absl::Mutex mu;
    WorkQueue* queue ABSL_GUARDED_BY(mu);
  };
  struct Waiting {
    Clock::TimerId timer;
    absl::Duration due;   // Monotonic.
    uint64_t generation;  // Tells this timer's callback from a cancelled one's.
  };

  // Arms (or keeps the earlier) timer for `key`; false when shut down.
  bool ArmLocked(const std::string& key, absl::Duration delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs on the clock's timer thread with `timer_target_->mu` held.
  void OnTimer(const std::string& key, uint64_t generation);
  // Marks `key` dirty and queues it unless it is processing. Returns true when `key` was
  // not dirty already (an add that counts), false when de-duplicated or shut down.
  bool AddLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  RateLimiter limiter_;
  const WorkQueueMetrics metrics_;
  const std::shared_ptr<TimerTarget> timer_target_;

  absl::Mutex mu_;
  // Keys in the order `Get` hands them out; each is also in `dirty_`.
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  // Keys that need processing: queued, or processing and added again.
  absl::flat_hash_set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  // Keys handed out by `Get` and not yet `Done`, with when `Get` handed them out.
  absl::flat_hash_map<std::string, absl::Duration> processing_ ABSL_GUARDED_BY(mu_);
  // When each dirty key was added (monotonic), for the queue-duration metric.
  absl::flat_hash_map<std::string, absl::Duration> added_at_ ABSL_GUARDED_BY(mu_);
  // Keys waiting on an `AddAfter` timer.
  absl::flat_hash_map<std::string, Waiting> waiting_ ABSL_GUARDED_BY(mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kaito::server
