// The shim's read cache: a copy of every workspace, fed by one watch of every namespace,
// from which GETs of a workspace are answered without a call to kaito-server, as
// kube-apiserver answers reads from its watch cache. Each object's JSON is encoded once per
// resourceVersion and API version, not once per GET.
//
// Consistency: a GET is answered from the copy only once the copy has reached the revision
// kaito-server's own cache had when the GET arrived (one small list call finds it, and one
// such call serves every GET waiting at that moment), so a client reads its own writes
// and never an older state than a GET through the server would give. A copy that cannot
// catch up within `sync_timeout`, or has no watch open, sends the GET to the server.
//
// Authorization: kaito-server decides who may read what. A GET from a caller (by its
// Authorization header) in a namespace goes to the server first; when the server answers it
// (found or not found: it checks access before it looks), the cache answers that caller's
// GETs in that namespace for `authorization_ttl`, as kube-apiserver's webhook authorizer
// caches its verdicts. A revoked token can so read workspaces through the shim for at most
// that long. Roles bind per namespace, so the verdict holds for every name in it.
//
// The copy's own watch and list use the shim's identity on its channel (its client
// certificate; no Authorization header). Where kaito-server refuses that identity, there is
// no copy and every GET goes to the server, as without the cache.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kaito/v1/workspace.pb.h"
#include "tools/kube-shim/backend.h"

namespace kaito::shim {

struct ReadCacheOptions {
  // How long the server's answer to a caller's GET in a namespace lets the cache answer that
  // caller's GETs there. Zero: no cache (every GET goes to the server).
  absl::Duration authorization_ttl = absl::Seconds(10);
  // How long a GET waits for the copy to reach the server's revision before it asks the
  // server instead.
  absl::Duration sync_timeout = absl::Seconds(1);
  // Verdicts kept; past this many the oldest half is dropped.
  size_t max_authorizations = 10000;
  // Waits between attempts to open the watch, jittered, doubling up to `retry_cap`.
  absl::Duration retry_initial = absl::Milliseconds(200);
  absl::Duration retry_cap = absl::Seconds(30);
};

// One cached workspace at one resourceVersion.
class CachedWorkspace {
 public:
  explicit CachedWorkspace(std::unique_ptr<v1::Workspace> object) : object_(std::move(object)) {}
  const v1::Workspace& object() const { return *object_; }
  // The JSON served for `version`: encoded by `encode` on first use, then kept.
  std::shared_ptr<const std::string> Json(const std::string& version,
                                          const std::function<std::string()>& encode) const;

 private:
  std::unique_ptr<const v1::Workspace> object_;
  mutable absl::Mutex mu_;
  mutable std::map<std::string, std::shared_ptr<const std::string>> json_ ABSL_GUARDED_BY(mu_);
};

class WorkspaceReadCache {
 public:
  // `backend` (the shim's workspace backend) opens the watch and outlives the cache.
  WorkspaceReadCache(KindBackend* backend, ReadCacheOptions options);
  ~WorkspaceReadCache();

  // Starts the thread that keeps the copy.
  void Start();
  // Ends the watch and joins the thread; Get answers kAskServer from then on.
  void Stop();

  enum class Answer { kFound, kNotFound, kAskServer };
  // kFound sets `*out`. kAskServer: the copy cannot answer this caller now.
  Answer Get(const std::string& authorization, const std::string& ns, const std::string& name,
             absl::Time deadline, std::shared_ptr<const CachedWorkspace>* out);
  // What the server answered to a caller's GET in `ns`: OK and NOT_FOUND let the cache
  // answer that caller there for the TTL.
  void Learn(const std::string& authorization, const std::string& ns, const grpc::Status& answer);

  // The copy is complete (its watch delivered the initial state) and followed.
  bool ready();
  int64_t revision();
  size_t size();

 private:
  void Run();
  // One watch from the initial state on; returns when it ends. Sets `progressed` once the
  // initial state arrived.
  grpc::Status Follow(bool* progressed);
  // The revision kaito-server's cache has now, or an error; batched: a caller joins the
  // next call to start.
  absl::StatusOr<int64_t> ServerRevision(absl::Time deadline);
  // The copy is ready and the server's verdict for this caller and namespace still holds
  // (one lock for both, on every GET's path).
  bool ReadyAndAllowed(const std::string& authorization, const std::string& ns);

  KindBackend* const backend_;
  const ReadCacheOptions options_;
  std::thread thread_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  WatchStream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::flat_hash_map<std::string, std::shared_ptr<const CachedWorkspace>> objects_
      ABSL_GUARDED_BY(mu_);
  // Caller (Authorization header) and namespace -> until when the server's verdict holds.
  std::map<std::pair<std::string, std::string>, absl::Time> allowed_ ABSL_GUARDED_BY(mu_);

  // The batched revision calls.
  absl::Mutex sync_mu_;
  int64_t rounds_started_ ABSL_GUARDED_BY(sync_mu_) = 0;
  int64_t rounds_finished_ ABSL_GUARDED_BY(sync_mu_) = 0;
  bool round_in_flight_ ABSL_GUARDED_BY(sync_mu_) = false;
  absl::StatusOr<int64_t> last_round_ ABSL_GUARDED_BY(sync_mu_) = int64_t{0};
};

}  // namespace kaito::shim
