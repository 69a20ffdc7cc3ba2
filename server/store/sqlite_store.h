// The embedded durable `Store`: SQLite in WAL mode with `synchronous=FULL`.
//
// One writer thread owns the write connection. Writes queue up; the writer takes every
// queued write (up to `max_batch`), applies them in one transaction and commits once, so
// many concurrent writes share one fsync (group commit, as Mesos' registrar does). A
// write's callback runs only after its transaction is durable, and after every watcher
// has been handed the write's event, so a client that is told "done" reads its own write
// from any cache fed by `Watch`.
//
// Tables: `kv` (current value per key), `history` (one row per revision, the source of
// `Watch` replay, compacted to the newest `history_retention` revisions) and `meta`
// (the current and compacted revisions). Reads use a separate connection.
// The data directory is locked with flock(2): a second process gets FAILED_PRECONDITION.
#pragma once

#include <sqlite3.h>

#include <deque>
#include <map>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "common/bucket_counts.h"
#include "server/store/store.h"

namespace kaito::server::store {

struct SqliteStoreOptions {
  // The database file; its directory holds the lock file too.
  std::string path;
  // Most writes committed in one transaction.
  int max_batch = 2048;
  // Revisions of history kept for watches; older history is compacted automatically.
  int64_t history_retention = 100000;
};

// Counters for observability and benchmarks.
struct SqliteStoreStats {
  int64_t commits = 0;
  int64_t writes = 0;
  int64_t failed_commits = 0;
  // Each transaction's time from BEGIN to COMMIT (fsync included), and its writes.
  BucketCounts commit_seconds{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                               1, 2.5}};
  BucketCounts batch_writes{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048}};
};

class SqliteStore : public Store {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(SqliteStoreOptions options);
  // Drains queued writes, then stops the writer and closes the database.
  ~SqliteStore() override;

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
  std::string Backend() const override { return "sqlite"; }
  std::string WriteProblem() override;
  void OnWriteHealthChange(std::function<void(const std::string& problem)> listener) override;

  SqliteStoreStats stats();

 private:
  struct Op {
    // kProbe: a write that changes nothing, to learn whether the disk takes writes again.
    enum class Kind { kPut, kDelete, kCompact, kProbe } kind;
    std::string key;
    std::string value;
    int64_t expected_revision = kAnyRevision;
    WriteCallback done;
  };
  struct Watcher {
    std::string prefix;
    WatchCallback callback;
    // Events at or below this revision were already delivered from history.
    int64_t delivered_up_to = 0;
  };
  class Handle;
  class Statement;

  explicit SqliteStore(SqliteStoreOptions options);
  absl::Status Init();
  void Enqueue(Op op);
  void WriterLoop();
  void CommitBatch(std::vector<Op>& batch);
  absl::Status CompactLocked(int64_t revision);
  void RemoveWatcher(int64_t id);
  absl::StatusOr<std::vector<Event>> ReadHistory(const std::string& prefix,
                                                 int64_t after_revision);

  const SqliteStoreOptions options_;
  int lock_fd_ = -1;
  sqlite3* write_db_ = nullptr;  // Owned by the writer thread after Init.
  std::thread writer_;

  absl::Mutex queue_mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  absl::Mutex read_mu_;
  sqlite3* read_db_ ABSL_GUARDED_BY(read_mu_) = nullptr;

  // Held while delivering events and while a new watcher reads its backlog.
  absl::Mutex watch_mu_ ABSL_ACQUIRED_BEFORE(read_mu_);
  std::map<int64_t, Watcher> watchers_ ABSL_GUARDED_BY(watch_mu_);
  int64_t next_watcher_id_ ABSL_GUARDED_BY(watch_mu_) = 1;

  absl::Mutex state_mu_;
  int64_t revision_ ABSL_GUARDED_BY(state_mu_) = 0;   // Last durable revision.
  int64_t compacted_ ABSL_GUARDED_BY(state_mu_) = 0;
  SqliteStoreStats stats_ ABSL_GUARDED_BY(state_mu_);
  // The last commit's error; empty after a success.
  std::string write_problem_ ABSL_GUARDED_BY(state_mu_);
  std::function<void(const std::string&)> health_listener_ ABSL_GUARDED_BY(state_mu_);
};

}  // namespace kaito::server::store
