// Leader election on an etcd lease, for several kaito-server replicas sharing one etcd: one
// replica at a time runs the controllers.
//
// A candidate that finds the election key absent grants itself a lease (`lease_duration`) and
// creates the key in one transaction (compare create_revision == 0, put identity with the
// lease): etcd lets exactly one candidate win. The winner renews the lease every
// `retry_period`; the others read the key every `retry_period` and try again once it is gone
// (the leader revoked its lease on a clean stop, or etcd expired it after the leader died).
//
// Stepping down comes before the lease can be lost: a leader that has not renewed for
// `renew_deadline` (< `lease_duration`, counted from when the last successful renewal was
// sent) stops leading, and `stopped_leading` pauses the controllers, waiting for the
// reconciles in progress. Should a reconcile outlive that, its writes carry the leader's
// write fence (the election key's create revision) and fail once the key is another's.
//
// Thread-safety: the public methods may be called from any thread; the callbacks run on the
// elector's own thread, one at a time, and must not call `Stop`.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/store/store.h"

namespace kaito::server {

struct LeaderElectionOptions {
  // This replica's name, stored as the key's value while it leads.
  std::string identity;
  // The etcd key (with the installation's key prefix).
  std::string key;
  // The etcd lease's TTL (whole seconds; etcd rounds a shorter one up to its minimum).
  absl::Duration lease_duration = absl::Seconds(15);
  // A leader that could not renew for this long steps down; < lease_duration.
  absl::Duration renew_deadline = absl::Seconds(10);
  // How often the leader renews and the others look for a vacancy; < renew_deadline.
  absl::Duration retry_period = absl::Seconds(2);
};

// INVALID_ARGUMENT naming the flag when the durations do not nest as they must.
absl::Status CheckLeaderElectionOptions(const LeaderElectionOptions& options);

struct LeaderCallbacks {
  // This replica leads now; writes only the leader makes carry `fence`.
  std::function<void(const store::WriteFence& fence)> started_leading;
  // It does not any more (renewal failed, the key was taken or deleted, or Stop).
  std::function<void()> stopped_leading;
};

class LeaderElector {
 public:
  LeaderElector(std::shared_ptr<grpc::Channel> channel, LeaderElectionOptions options,
                LeaderCallbacks callbacks);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  void Start();
  // Steps down if leading (stopped_leading runs first, then the lease is revoked so that
  // another replica takes over within its retry period), and stops the thread. Idempotent.
  void Stop();

  bool leading() const { return leading_.load(); }
  // The identity that holds the key as last seen (this replica's while leading); empty when
  // nobody does.
  std::string leader() const;
  const std::string& identity() const { return options_.identity; }
  // Times this replica started leading.
  int64_t transitions() const { return transitions_.load(); }

 private:
  void Run();
  // One attempt at the key; true when this replica leads afterwards.
  bool TryAcquire();
  // One renewal; false when the lease or the key is no longer ours.
  absl::Status Renew();
  void StepDown(const std::string& why);
  void RevokeLease();
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const;
  void SetLeader(std::string leader);
  // Sleeps up to `d`; false when stopping.
  bool Sleep(absl::Duration d);

  const LeaderElectionOptions options_;
  const LeaderCallbacks callbacks_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Lease::Stub> lease_;

  std::atomic<bool> leading_{false};
  std::atomic<int64_t> transitions_{0};
  // Owned by the elector's thread.
  int64_t lease_id_ = 0;
  store::WriteFence fence_;
  std::chrono::steady_clock::time_point last_renewal_sent_;

  mutable absl::Mutex mu_;
  std::string leader_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  absl::Mutex lifecycle_mu_;
  bool started_ ABSL_GUARDED_BY(lifecycle_mu_) = false;
};

}  // namespace kaito::server
