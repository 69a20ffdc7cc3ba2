// Node leases, held in memory: an agent's heartbeat renews its node's lease with no store
// write ("small heartbeats"). A node whose lease is older than the TTL is NotReady; the
// node lifecycle controller reads the leases and acts. After a server restart no node has
// renewed yet: every node's lease counts from the tracker's start, so a restart never
// makes healthy nodes NotReady.
//
// Several replicas: an agent renews on the replica that hosts its session, but the leader's
// node lifecycle controller judges every node. With `Share`, a renewal is also published to
// the store (at most once per `interval` per node, a small write), and every replica feeds the
// renewals it sees published back through `Observe`; a new leader `Restart`s, so that each
// node's lease counts from the takeover at the latest (as after a restart).
//
// Thread-safety: any thread; `on_transition` is called without the lock held, when a node
// renews for the first time since the tracker started or after its lease had lapsed.
#pragma once

#include <algorithm>
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
      : clock_(clock), ttl_(ttl), on_transition_(std::move(on_transition)),
        started_(clock->Monotonic()) {}

  // How renewals reach the other replicas; set before the first renewal. `publish` and
  // `forget` must not block (they start store writes).
  struct Sharing {
    std::function<void(const std::string& node)> publish;
    std::function<void(const std::string& node)> forget;
    absl::Duration interval;
  };
  void Share(Sharing sharing) { sharing_ = std::move(sharing); }

  // A renewal by an agent whose session this replica hosts.
  void Renew(const std::string& node) {
    bool publish = false;
    Record(node, sharing_.publish ? &publish : nullptr);
    if (publish) sharing_.publish(node);
  }

  // A renewal another replica (or this one) published.
  void Observe(const std::string& node) { Record(node, nullptr); }

  // Forgets a node (deleted).
  void Forget(const std::string& node) {
    {
      absl::MutexLock lock(&mu_);
      renewed_.erase(node);
      published_.erase(node);
    }
    if (sharing_.forget) sharing_.forget(node);
  }

  // Counts every lease from now, as a fresh start does (a new leader).
  void Restart() {
    absl::MutexLock lock(&mu_);
    renewed_.clear();
    started_ = clock_->Monotonic();
  }

  // Monotonic time of the node's last renewal, or of the tracker's start when it has not
  // renewed since.
  absl::Duration LastRenewal(const std::string& node) {
    absl::MutexLock lock(&mu_);
    auto it = renewed_.find(node);
    return it == renewed_.end() ? started_ : std::max(it->second, started_);
  }

  absl::Duration ttl() const { return ttl_; }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return renewed_.size();
  }

 private:
  void Record(const std::string& node, bool* publish) {
    const absl::Duration now = clock_->Monotonic();
    bool transition;
    {
      absl::MutexLock lock(&mu_);
      auto [it, inserted] = renewed_.try_emplace(node, now);
      transition = inserted || now - it->second > ttl_;
      it->second = now;
      if (publish != nullptr) {
        auto [p, first] = published_.try_emplace(node, now);
        *publish = first || now - p->second >= sharing_.interval;
        if (*publish) p->second = now;
      }
    }
    if (transition && on_transition_) on_transition_(node);
  }

  Clock* const clock_;
  const absl::Duration ttl_;
  const std::function<void(const std::string&)> on_transition_;
  Sharing sharing_;
  absl::Mutex mu_;
  absl::Duration started_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Duration> renewed_ ABSL_GUARDED_BY(mu_);
  // When this replica last published each node's renewal.
  std::map<std::string, absl::Duration> published_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
