// An in-memory `Store`: the fake for unit tests and the backend of `--store memory`
// (nothing survives a restart). It passes the same contract suite as the durable
// backends. Thread-safe; callbacks run inline on the calling thread, outside the lock
// for writes, inside the store's delivery order for watches.
#pragma once

#include <map>

#include "absl/synchronization/mutex.h"
#include "server/store/store.h"

namespace kaito::server::store {

class MemoryStore : public Store {
 public:
  // Keeps the newest `history_retention` revisions of history for watches.
  explicit MemoryStore(int64_t history_retention = 100000)
      : history_retention_(history_retention) {}
  ~MemoryStore() override;

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
  std::string Backend() const override { return "memory"; }

  // Test hook: the number of calls to Put and Delete so far.
  int64_t write_calls() {
    absl::MutexLock lock(&mu_);
    return write_calls_;
  }

 private:
  struct Watcher {
    std::string prefix;
    WatchCallback callback;
  };
  class Handle;

  // Applies one event under `mu_` and delivers it to watchers. Delivery holds
  // `deliver_mu_` so that watch callbacks see events in revision order.
  absl::StatusOr<int64_t> Apply(Event::Type type, std::string key, std::string value,
                                int64_t expected_revision);
  void RemoveWatcher(int64_t id);

  const int64_t history_retention_;
  absl::Mutex deliver_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  std::map<std::string, KeyValue> data_ ABSL_GUARDED_BY(mu_);
  std::vector<Event> history_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t compacted_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t write_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_watcher_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, Watcher> watchers_ ABSL_GUARDED_BY(deliver_mu_);
};

}  // namespace kaito::server::store
