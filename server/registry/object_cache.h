// An in-memory copy of every object of one kind, fed by the store's watch, like
// kube-apiserver's watch cache. Get, List and Watch are served from here, so reads never
// touch disk and never wait on the store's writer.
//
// Consistency: the store hands a write's event to the cache before it acknowledges the
// write, so a client that was told a write succeeded reads it back from the cache.
// The cache keeps the newest `history_capacity` events, and at most a byte limit of them,
// so a watch can resume from any revision inside that window; older revisions get
// OUT_OF_RANGE (the client relists).
//
// Thread-safety: all state is guarded by `mu_`. Sinks are called with `mu_` held, from
// the store's writer thread (or the thread that registers a watch); they must not block
// and must not call back into the cache.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <google/protobuf/message.h>

#include "absl/synchronization/mutex.h"
#include "kaito/v1/meta.pb.h"
#include "server/registry/value_transformer.h"
#include "server/store/store.h"

namespace kaito::server {

struct CachedObject {
  std::shared_ptr<const google::protobuf::Message> object;  // resourceVersion filled in.
  int64_t mod_revision = 0;
};

struct CacheEvent {
  v1::EventType type = v1::ADDED;
  std::string key;
  int64_t revision = 0;
  // For DELETED: the last state of the object, with resourceVersion = the delete's revision.
  std::shared_ptr<const google::protobuf::Message> object;
  // For MODIFIED: the state before, so that a filtered watch can tell an object that
  // starts or stops matching (sent as ADDED or DELETED, as Kubernetes does).
  std::shared_ptr<const google::protobuf::Message> previous;
  // The stored size of `object`: what keeping this event costs, roughly.
  size_t bytes = 0;
};
using CacheEventPtr = std::shared_ptr<const CacheEvent>;

class CacheSink {
 public:
  virtual ~CacheSink() = default;
  // Called in revision order without gaps (for keys under the watched prefix). Must not
  // block.
  virtual void OnEvent(const CacheEventPtr& event) = 0;
};

class CacheWatch {
 public:
  virtual ~CacheWatch() = default;
};

class ObjectCache {
 public:
  // `prefix` is the kind's key prefix ("/workspaces/"); `prototype` parses its values.
  // `transformer` (null: values are stored as serialized) opens each stored value before
  // it is parsed; a value that does not open is logged by key and skipped, as one that
  // does not parse. It outlives the cache.
  ObjectCache(store::Store* store, std::string prefix, const google::protobuf::Message* prototype,
              size_t history_capacity = 10000, const ValueTransformer* transformer = nullptr);
  ~ObjectCache();

  // Bounds the history in bytes as well as in events (the stored size of each event's
  // object; 0 = no byte bound). Call before Start.
  void SetHistoryByteLimit(size_t bytes) { history_byte_limit_ = bytes; }

  // Loads the current objects and recent history, then follows the store.
  absl::Status Start();
  // Stops following the store (reads go on answering from what the cache holds). For a
  // shutdown that lets the store drain its writes while their completions can still read.
  void Detach();

  std::optional<CachedObject> Get(const std::string& key);
  // Waits up to `timeout` until the cache holds `key` at `min_mod_revision` or later (a write
  // another replica made that this one's watch has not delivered yet); the entry then, or
  // what the cache holds at the timeout. Blocks: only for rare paths.
  std::optional<CachedObject> AwaitKey(const std::string& key, int64_t min_mod_revision,
                                       absl::Duration timeout);

  struct Page {
    std::vector<CachedObject> items;
    bool more = false;       // More items match after the last one returned.
    int64_t revision = 0;    // The cache revision the page reflects.
  };
  // Objects under `prefix` with key > `start_after`, in key order, that pass `filter`;
  // at most `limit` (0 = no limit).
  Page List(const std::string& prefix, const std::string& start_after, size_t limit,
            const std::function<bool(const google::protobuf::Message&)>& filter);

  // `after_revision` < 0: an ADDED event for every current object under `prefix`, then
  // changes. Otherwise every change after that revision (OUT_OF_RANGE when older than
  // the history kept). The sink is detached when the returned handle is destroyed.
  // With `bookmark`, a BOOKMARK event at the cache's revision follows the replayed events,
  // before any live one.
  absl::StatusOr<std::unique_ptr<CacheWatch>> Watch(const std::string& prefix,
                                                    int64_t after_revision, CacheSink* sink,
                                                    bool bookmark = false);

  int64_t revision();
  size_t size();
  size_t watchers();
  // What the history holds now, in events and bytes.
  size_t history_events();
  size_t history_bytes();

 private:
  class Handle;
  void OnStoreEvents(const std::vector<store::Event>& events);
  std::shared_ptr<const google::protobuf::Message> Parse(const store::KeyValue& kv);
  void Detach(int64_t id);

  store::Store* const store_;
  const std::string prefix_;
  const google::protobuf::Message* const prototype_;
  const ValueTransformer* const transformer_;
  const size_t history_capacity_;
  std::unique_ptr<store::WatchHandle> store_watch_;

  absl::Mutex mu_;
  std::map<std::string, CachedObject> objects_ ABSL_GUARDED_BY(mu_);
  size_t history_byte_limit_ = 0;
  std::deque<CacheEventPtr> history_ ABSL_GUARDED_BY(mu_);
  size_t history_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Every event after this revision is in `history_`.
  int64_t history_floor_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_sink_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<int64_t, std::pair<std::string, CacheSink*>> sinks_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
