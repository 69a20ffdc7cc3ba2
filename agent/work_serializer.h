// A strand: closures run one at a time, in the order they were posted, never two at once.
// There is no thread behind it: `Run` executes the queue on the posting thread when the
// strand is idle (as gRPC's WorkSerializer does), so thousands of agents in one process cost
// no thread each. `Close` doubles as the lifetime guard of the object whose state the strand
// owns: after it returns, no closure runs any more.
#pragma once

#include <deque>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace kaito::agent {

// Thread-safe. Hold it by `std::shared_ptr` and let every asynchronous callback (timers,
// runtime completions, gRPC reactions) capture that pointer and post through it; a callback
// may then capture a raw pointer to the strand's owner and dereference it only inside the
// posted closure.
class WorkSerializer {
 public:
  WorkSerializer() = default;
  WorkSerializer(const WorkSerializer&) = delete;
  WorkSerializer& operator=(const WorkSerializer&) = delete;

  // Queues `fn`; runs it (and whatever else is queued) before returning when no other thread
  // is draining the strand. A closure that posts another closure never recurses: the new one
  // runs after the current one returns. Closures must not block. Never call `Run` while
  // holding a lock that a closure may take. After `Close`, `fn` is dropped.
  void Run(absl::AnyInvocable<void()> fn);

  // Drops the queued closures and waits until a closure running on another thread returns.
  // Idempotent. Called from inside a closure it does not wait for that closure.
  void Close();

  bool closed();

 private:
  void Drain();

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  std::thread::id drainer_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace kaito::agent
