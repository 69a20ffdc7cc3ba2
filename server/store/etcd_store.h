// The etcd v3 backend of the Store interface, over etcd's gRPC API (stubs generated at build
// time from Debian's golang-etcd-server-dev). Several kaito-server replicas can share one
// etcd cluster; etcd does the replication and the conflict checks, nothing here does.
//
// Keys: every key is stored as `key_prefix + key`, so one etcd can serve several
// installations. Revisions: ours are etcd's minus one, so that a fresh etcd (which starts
// at revision 1) is an empty store at revision 0 exactly like SQLite; one etcd revision is
// one of our writes, and `resourceVersion` keeps etcd's order and its gaps (writes of other
// installations sharing the etcd use revisions too).
//
// Writes are transactions (compare create_revision/mod_revision, then put or delete, else
// read the key to tell NOT_FOUND from ABORTED), sent asynchronously on one HTTP/2
// connection, so concurrent writes are pipelined, never one at a time. A write is
// acknowledged only after every watch of this store whose prefix covers its key has
// delivered it: a caller that saw its write succeed reads it from a cache fed by `Watch`
// (the read-your-writes guarantee the SQLite backend gives by delivering before it
// acknowledges). Watches share one bidirectional etcd Watch stream; when it breaks, each
// watch resumes from the revision after the last it delivered.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/bucket_counts.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "server/store/store.h"

namespace kaito::server::store {

struct EtcdStoreOptions {
  // HOST:PORT of each member; the client fails over between them.
  std::vector<std::string> endpoints;
  // Prepended to every key ("/kaito" by default on the command line).
  std::string key_prefix = "/kaito";
  // TLS: all empty = plaintext. With ca_file the members' certificates are verified against
  // it; cert_file and key_file present a client certificate (etcd --client-cert-auth).
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Revisions of history kept: once a write of this store is more than 1.25 x this past
  // the compacted revision, etcd is compacted to keep the newest `history_retention` (as the
  // SQLite backend trims itself). etcd's compaction is for the whole etcd, every prefix on
  // it; 0: never (etcd's own --auto-compaction-* or an operator does it).
  int64_t history_retention = 0;
  // How long Open waits for a member to answer, and each request's deadline.
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{10000};
};

// Parses "etcd://h1:p1,h2:p2" (the --store flag) into endpoints; INVALID_ARGUMENT naming
// the bad part otherwise.
absl::StatusOr<std::vector<std::string>> ParseEtcdEndpoints(const std::string& url);

class EtcdStore final : public Store {
 public:
  // Connects (waiting up to connect_timeout for a member), reads the current and compacted
  // revisions and opens the watch stream. UNAVAILABLE when no member answers.
  static absl::StatusOr<std::unique_ptr<EtcdStore>> Open(const EtcdStoreOptions& options);
  ~EtcdStore() override;

  void Put(std::string key, std::string value, int64_t expected_revision,
           WriteCallback done) override;
  void Delete(std::string key, int64_t expected_revision, WriteCallback done) override;
  absl::StatusOr<KeyValue> Get(const std::string& key) override;
  absl::StatusOr<ListResult> List(const std::string& prefix) override;
  absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& prefix,
                                                     int64_t after_revision,
                                                     WatchCallback callback) override;
  int64_t CurrentRevision() override;
  int64_t CompactedRevision() override;
  absl::Status Compact(int64_t revision) override;
  std::string Backend() const override { return "etcd"; }
  std::string WriteProblem() override;
  void OnWriteHealthChange(std::function<void(const std::string& problem)> listener) override;

  // The connection to the members, shared with other etcd clients of this process (the leader
  // election), and the prefix of every key this store writes.
  std::shared_ptr<grpc::Channel> channel() const { return channel_; }
  const std::string& key_prefix() const { return options_.key_prefix; }
  std::chrono::milliseconds request_timeout() const { return options_.request_timeout; }

  // Figures for /metrics.
  struct Stats {
    int64_t writes = 0;            // Acknowledged writes.
    int64_t failed_writes = 0;     // Writes that failed for want of etcd (UNAVAILABLE).
    int64_t in_flight = 0;         // Transactions sent and not yet answered.
    int64_t watch_reconnects = 0;  // Times the watch stream was opened again.
    int64_t compactions = 0;       // Compactions this store asked of etcd (history_retention).
    // Each write's transaction, from sending to etcd's answer (etcd's commit included).
    BucketCounts txn_seconds{
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  };
  Stats stats();

 private:
  class Handle;
  struct Watcher {
    std::string prefix;  // Ours, without key_prefix.
    // Shared by a watch's replay and its live watcher.
    std::shared_ptr<WatchCallback> callback;
    // Our revision of the last event delivered (or the revision the watch started after).
    int64_t delivered = 0;
    bool created = false;  // etcd confirmed it on the current stream.
    bool dead = false;     // Cancelled by etcd (history compacted); never delivers again.
    // A replay: watches every key, delivers those under prefix up to this etcd revision,
    // then is caught_up and delivers nothing more. 0 for a live watcher.
    int64_t catch_up_to = 0;
    bool caught_up = false;
  };
  // A write waiting for the watches that cover its key to deliver it.
  struct PendingAck {
    std::string key;
    int64_t revision;
    WriteCallback done;
  };
  struct Call;

  explicit EtcdStore(EtcdStoreOptions options);
  absl::Status Connect();
  void Write(etcdserverpb::TxnRequest txn, std::string key, int64_t expected_revision,
             bool is_delete, WriteCallback done);
  void OnTxnDone(Call* call, const grpc::Status& status);
  // Acknowledges the writes that no live watch still owes; caller holds mu_.
  std::vector<PendingAck> TakeSatisfiedAcksLocked();
  bool CoveredLocked(const std::string& key, int64_t revision) const;
  void NoteRevision(int64_t etcd_revision);
  // After an acknowledged write at `revision`: starts an asynchronous compaction when the
  // history kept has outgrown history_retention (one at a time).
  void MaybeCompact(int64_t revision);
  void SetProblem(const std::string& problem);

  std::unique_ptr<grpc::ClientContext> NewContext() const;
  absl::StatusOr<etcdserverpb::RangeResponse> Range(const etcdserverpb::RangeRequest& request);
  absl::StatusOr<int64_t> FindCompactedRevision();

  // The watch stream: run by watch_thread_, reconnecting until closing_.
  void WatchLoop();
  bool SendWatch(const etcdserverpb::WatchRequest& request);
  void HandleWatchResponse(const etcdserverpb::WatchResponse& response);
  etcdserverpb::WatchRequest CreateRequest(int64_t id, const Watcher& w) const;
  // Registers a watcher and waits until etcd created it (and, for a replay, until it
  // caught up); its id, or why not.
  absl::StatusOr<int64_t> AddWatcher(const std::string& prefix, int64_t after_revision,
                                     std::shared_ptr<WatchCallback> callback, int64_t catch_up_to);
  void CancelWatcher(int64_t id);
  void ProbeLoop();

  std::string Key(const std::string& key) const { return options_.key_prefix + key; }
  // The first key of a prefix range, and the key after its last (etcd has no empty key:
  // "\0" to "\0" is every key).
  std::string RangeStart(const std::string& prefix) const {
    return Key(prefix).empty() ? std::string(1, '\0') : Key(prefix);
  }
  std::string RangeEnd(const std::string& prefix) const;

  const EtcdStoreOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;

  std::atomic<int64_t> current_revision_{0};    // Ours.
  std::atomic<int64_t> compacted_revision_{0};  // Ours.
  std::atomic<bool> compacting_{false};

  // Guards the watchers, the pending acks and the write problem. Watch callbacks run
  // under deliver_mu_ (never under mu_), so destroying a handle waits for a running
  // callback and no callback runs after.
  std::mutex deliver_mu_;
  mutable absl::Mutex mu_;
  std::map<int64_t, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  int64_t next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<PendingAck> pending_ ABSL_GUARDED_BY(mu_);
  std::string problem_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> health_listener_ ABSL_GUARDED_BY(mu_);
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  Stats stats_ ABSL_GUARDED_BY(mu_);

  // The current watch stream; writes to it are serialised by stream_mu_.
  std::mutex stream_mu_;
  std::unique_ptr<grpc::ClientContext> stream_context_;
  std::unique_ptr<grpc::ClientReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      stream_;

  std::thread watch_thread_;
  std::thread probe_thread_;
  std::mutex wake_mu_;
  std::condition_variable wake_;
};

}  // namespace kaito::server::store
