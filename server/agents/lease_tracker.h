// Node leases, held in memory: an agent's heartbeat renews its node's lease with no store
// write ("small heartbeats"). A node whose lease is older than the TTL is NotReady; the
// node lifecycle controller reads the leases and acts. After a server restart no node has
// renewed yet: every node's lease counts from the tracker's start, so a restart never
// makes healthy nodes NotReady.
//
// Thread-safety: any thread; `on_transition` is called without the lock held, when a node
// renews for the first time since the tracker started or after its lease had lapsed.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace kaito::server {

class LeaseTracker {
 public:
  LeaseTracker(Clock* clock, absl::Duration ttl,
               std::function<void(const std::string& node)> on_transition)
      : clock_(clock), ttl_(ttl), started_(clock->Monotonic()),
        on_transition_(std::move(on_transition)) {}

  void Renew(const std::string& node) {
    const absl::Duration now = clock_->Monotonic();
    bool transition;
    {
      absl::MutexLock lock(&mu_);
      auto [it, inserted] = renewed_.try_emplace(node, now);
      transition = inserted || now - it->second > ttl_;
      it->second = now;
    }
    if (transition && on_transition_) on_transition_(node);
  }

  // Forgets a node (deleted).
  void Forget(const std::string& node) {
    absl::MutexLock lock(&mu_);
    renewed_.erase(node);
  }

  // Monotonic time of the node's last renewal, or of the tracker's start when it has not
  // renewed since.
  absl::Duration LastRenewal(const std::string& node) {
    absl::MutexLock lock(&mu_);
    auto it = renewed_.find(node);
    return it == renewed_.end() ? started_ : it->second;
  }

  absl::Duration ttl() const { return ttl_; }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return renewed_.size();
  }

 private:
  Clock* const clock_;
  const absl::Duration ttl_;
  const absl::Duration started_;
  const std::function<void(const std::string&)> on_transition_;
  absl::Mutex mu_;
  std::map<std::string, absl::Duration> renewed_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
