// Which agent session serves which node, and the push of desired workloads to them.
//
// The registry follows the workload cache (it is a CacheSink): every workload event marks
// the nodes it concerns dirty, and a flush, run on the clock's timer thread, sends each
// dirty node's session the full set of workloads placed on it with the next generation.
// Events coalesce: a burst of writes for one node becomes one message. The sink itself
// only records names (it runs on the store's writer thread with the cache locked).
//
// A second session for a node replaces the first, which is closed with ABORTED.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "kaito/v1/workload.pb.h"
#include "server/registry/object_cache.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// The part of a session the registry drives.
class SessionHandle {
 public:
  virtual ~SessionHandle() = default;
  // Sends the full desired set; must not block.
  virtual void SendDesired(int64_t generation, std::vector<v1::Workload> workloads) = 0;
  // Ends the session with `status`; must not block; idempotent.
  virtual void Close(const absl::Status& status) = 0;
};

class SessionRegistry : public CacheSink {
 public:
  SessionRegistry(ObjectRegistry<v1::Workload>* workloads, Clock* clock);
  ~SessionRegistry() override;

  // Starts following the workload cache (after its Start).
  absl::Status Start();
  // Detaches from the cache and cancels a pending flush.
  void Stop();

  // Makes `session` the node's session and pushes its desired set. The replaced one, if
  // any, is closed.
  void Register(const std::string& node, SessionHandle* session);
  // Removes `session` if it is still the node's session.
  void Unregister(const std::string& node, SessionHandle* session);
  bool Connected(const std::string& node);
  size_t sessions();

  // The workloads the node should run now: placed on it and not being deleted.
  std::vector<v1::Workload> DesiredFor(const std::string& node);

  void OnEvent(const CacheEventPtr& event) override;

 private:
  void MarkDirty(const std::string& node) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Flush();

  ObjectRegistry<v1::Workload>* const workloads_;
  Clock* const clock_;
  std::unique_ptr<CacheWatch> watch_;
  absl::Mutex mu_;
  std::map<std::string, SessionHandle*> sessions_ ABSL_GUARDED_BY(mu_);
  // node -> keys of the workloads placed on it.
  std::map<std::string, std::set<std::string>> placed_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  Clock::TimerId flush_timer_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  // Serializes flushes so that generations reach each session in order.
  absl::Mutex flush_mu_ ABSL_ACQUIRED_BEFORE(mu_);
};

}  // namespace kaito::server
