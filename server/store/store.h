// The durable key/value store behind the control plane: an etcd-like interface with a
// single global revision counter. Every write gets the next revision; `Watch` replays
// history after a revision and then streams new writes, in revision order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kaito::server::store {

// Expected-revision preconditions for `Put` and `Delete`.
inline constexpr int64_t kAnyRevision = -1;   // Unconditional.
inline constexpr int64_t kMustNotExist = 0;   // Create: fails with ALREADY_EXISTS.

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  // For kPut: the new value and revisions. For kDelete: the last value of the key,
  // `mod_revision` is the revision of the delete itself.
  KeyValue kv;
  // True for a kPut that created the key.
  bool IsCreate() const { return type == Type::kPut && kv.create_revision == kv.mod_revision; }
};

struct ListResult {
  std::vector<KeyValue> items;  // Sorted by key.
  int64_t revision = 0;         // The store revision the list reflects.
};

// Receives batches of events, in revision order, without gaps. Called from the store's
// writer thread (or inline by fakes); it must not block and must not call back into the
// store's `Watch` or `Close`.
using WatchCallback = std::function<void(const std::vector<Event>&)>;

// Cancels a watch when destroyed. After destruction the callback is never called again.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

// Completion of a write. OK with the revision of the write, or:
//   ALREADY_EXISTS (create of an existing key), NOT_FOUND (delete of a missing key or
//   conditional put of a missing key), ABORTED (expected revision is stale),
//   UNAVAILABLE (the store is closed or the disk failed; nothing was written).
// A write is acknowledged only after it is durable.
using WriteCallback = absl::AnyInvocable<void(absl::StatusOr<int64_t>) &&>;

class Store {
 public:
  virtual ~Store() = default;

  // `expected_revision`: kAnyRevision, kMustNotExist, or the key's current mod_revision.
  virtual void Put(std::string key, std::string value, int64_t expected_revision,
                   WriteCallback done) = 0;
  // `expected_revision`: kAnyRevision or the key's current mod_revision.
  virtual void Delete(std::string key, int64_t expected_revision, WriteCallback done) = 0;

  virtual absl::StatusOr<KeyValue> Get(const std::string& key) = 0;
  virtual absl::StatusOr<ListResult> List(const std::string& prefix) = 0;

  // Delivers every event for keys under `prefix` with revision > `after_revision`, then
  // every later one. OUT_OF_RANGE when history after `after_revision` was compacted.
  virtual absl::StatusOr<std::unique_ptr<WatchHandle>> Watch(const std::string& prefix,
                                                             int64_t after_revision,
                                                             WatchCallback callback) = 0;

  // The revision of the last durable write (0 for an empty store).
  virtual int64_t CurrentRevision() = 0;
  // The oldest revision whose history is gone; watches must start at or after it.
  virtual int64_t CompactedRevision() = 0;
  // Drops history up to and including `revision`.
  virtual absl::Status Compact(int64_t revision) = 0;

  // "sqlite", "memory", "etcd".
  virtual std::string Backend() const = 0;

  // Why writes fail now (the last commit failed: disk full, I/O error), or empty while the
  // store takes writes. A store that failed probes itself until a write succeeds again.
  virtual std::string WriteProblem() { return ""; }
  // Called (from the store's own thread, under its lock: it must not call the store) each
  // time WriteProblem changes between empty and not; set before the first write.
  virtual void OnWriteHealthChange(std::function<void(const std::string& problem)> listener) {}
};

// Leader-only writes (fencing). While a WriteFence is in scope on a thread, every write that
// thread starts succeeds only if the fence's key still has the fence's create revision: the
// election key of the leader that made the fence. When another replica has taken the lease
// since, the write fails with FAILED_PRECONDITION and nothing is written, so a deposed leader
// that is still finishing a reconcile cannot act. Backends with one writer (SQLite, memory)
// have no elections and ignore fences.
struct WriteFence {
  std::string key;  // The backend's own key (for etcd: with its key prefix).
  int64_t create_revision = 0;  // The backend's own revision of the key's creation.
};

// The fence in scope on this thread, or null.
const WriteFence* CurrentWriteFence();

// Puts `fence` (which must outlive the scope; null for none) in scope on this thread.
class ScopedWriteFence {
 public:
  explicit ScopedWriteFence(const WriteFence* fence);
  ~ScopedWriteFence();
  ScopedWriteFence(const ScopedWriteFence&) = delete;
  ScopedWriteFence& operator=(const ScopedWriteFence&) = delete;

 private:
  const WriteFence* const previous_;
};

// Blocking helpers for tests and tools (never call these from a gRPC reactor).
absl::StatusOr<int64_t> PutSync(Store& store, std::string key, std::string value,
                                int64_t expected_revision);
absl::StatusOr<int64_t> DeleteSync(Store& store, std::string key, int64_t expected_revision);

}  // namespace kaito::server::store

namespace kaito::server::store {

// The precondition rule shared by every backend. `current_mod_revision` is 0 when the
// key does not exist.
absl::Status CheckPrecondition(const std::string& key, int64_t current_mod_revision,
                               int64_t expected_revision, bool is_delete);

// Whether `key` is under `prefix`.
inline bool HasPrefix(const std::string& key, const std::string& prefix) {
  return key.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace kaito::server::store
