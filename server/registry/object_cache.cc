#include "server/registry/object_cache.h"

#include <spdlog/spdlog.h>

#include "server/registry/object_meta.h"

namespace kaito::server {

class ObjectCache::Handle : public CacheWatch {
 public:
  Handle(ObjectCache* cache, int64_t id) : cache_(cache), id_(id) {}
  ~Handle() override { cache_->Detach(id_); }

 private:
  ObjectCache* cache_;
  int64_t id_;
};

ObjectCache::ObjectCache(store::Store* store, std::string prefix,
                         const google::protobuf::Message* prototype, size_t history_capacity,
                         const ValueTransformer* transformer)
    : store_(store),
      prefix_(std::move(prefix)),
      prototype_(prototype),
      transformer_(transformer),
      history_capacity_(std::max<size_t>(history_capacity, 1)) {}

ObjectCache::~ObjectCache() { Detach(); }

void ObjectCache::Detach() { store_watch_.reset(); }

std::shared_ptr<const google::protobuf::Message> ObjectCache::Parse(const store::KeyValue& kv) {
  std::shared_ptr<google::protobuf::Message> object(prototype_->New());
  std::string opened;
  if (transformer_ != nullptr) {
    auto plain = transformer_->Open(kv.key, kv.value);
    if (!plain.ok()) {
      spdlog::error("cache: stored value of {} at revision {} cannot be opened: {}; skipped",
                    kv.key, kv.mod_revision, std::string(plain.status().message()));
      return nullptr;
    }
    opened = std::move(*plain);
  }
  const std::string& value = transformer_ != nullptr ? opened : kv.value;
  if (!object->ParseFromString(value)) {
    spdlog::error("cache: stored value of {} at revision {} does not parse as {}; skipped", kv.key,
                  kv.mod_revision, prototype_->GetTypeName());
    return nullptr;
  }
  MutableMetadata(object.get())->set_resource_version(std::to_string(kv.mod_revision));
  return object;
}

absl::Status ObjectCache::Start() {
  auto list = store_->List(prefix_);
  if (!list.ok()) return list.status();
  {
    absl::MutexLock lock(&mu_);
    for (const store::KeyValue& kv : list->items) {
      if (auto object = Parse(kv)) objects_[kv.key] = CachedObject{object, kv.mod_revision};
    }
    revision_ = list->revision;
    // Replay recent history into the ring so that watches can resume across restarts.
    const int64_t window = static_cast<int64_t>(history_capacity_);
    history_floor_ = std::max(store_->CompactedRevision(), list->revision - window);
    if (history_floor_ < 0) history_floor_ = 0;
  }
  int64_t floor;
  {
    absl::MutexLock lock(&mu_);
    floor = history_floor_;
  }
  auto watch = store_->Watch(
      prefix_, floor, [this](const std::vector<store::Event>& events) { OnStoreEvents(events); });
  if (!watch.ok()) return watch.status();
  store_watch_ = std::move(*watch);
  return absl::OkStatus();
}

void ObjectCache::OnStoreEvents(const std::vector<store::Event>& events) {
  absl::MutexLock lock(&mu_);
  for (const store::Event& e : events) {
    auto event = std::make_shared<CacheEvent>();
    event->key = e.kv.key;
    event->revision = e.kv.mod_revision;
    event->bytes = e.kv.value.size();
    event->object = Parse(e.kv);
    if (!event->object) continue;
    if (e.type == store::Event::Type::kDelete) {
      event->type = v1::DELETED;
    } else {
      event->type = e.IsCreate() ? v1::ADDED : v1::MODIFIED;
    }
    const bool live = e.kv.mod_revision > revision_;
    if (live && event->type == v1::MODIFIED) {
      auto it = objects_.find(e.kv.key);
      if (it != objects_.end()) event->previous = it->second.object;
    }
    if (live) {
      if (event->type == v1::DELETED) {
        objects_.erase(e.kv.key);
      } else {
        objects_[e.kv.key] = CachedObject{event->object, e.kv.mod_revision};
      }
      revision_ = e.kv.mod_revision;
    }
    history_.push_back(event);
    history_bytes_ += event->bytes;
    while (!history_.empty() &&
           (history_.size() > history_capacity_ ||
            (history_byte_limit_ > 0 && history_bytes_ > history_byte_limit_))) {
      history_floor_ = history_.front()->revision;
      history_bytes_ -= history_.front()->bytes;
      history_.pop_front();
    }
    if (live) {
      for (auto& [id, sink] : sinks_) {
        if (store::HasPrefix(event->key, sink.first)) sink.second->OnEvent(event);
      }
    }
  }
}

std::optional<CachedObject> ObjectCache::Get(const std::string& key) {
  absl::ReaderMutexLock lock(&mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

std::optional<CachedObject> ObjectCache::AwaitKey(const std::string& key, int64_t min_mod_revision,
                                                  absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto fresh = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    auto it = objects_.find(key);
    return it != objects_.end() && it->second.mod_revision >= min_mod_revision;
  };
  mu_.AwaitWithTimeout(absl::Condition(&fresh), timeout);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

ObjectCache::Page ObjectCache::List(
    const std::string& prefix, const std::string& start_after, size_t limit,
    const std::function<bool(const google::protobuf::Message&)>& filter) {
  absl::ReaderMutexLock lock(&mu_);
  Page page;
  page.revision = revision_;
  auto it = start_after.empty() ? objects_.lower_bound(prefix) : objects_.upper_bound(start_after);
  for (; it != objects_.end() && store::HasPrefix(it->first, prefix); ++it) {
    if (filter && !filter(*it->second.object)) continue;
    if (limit > 0 && page.items.size() == limit) {
      page.more = true;
      break;
    }
    page.items.push_back(it->second);
  }
  return page;
}

absl::StatusOr<std::unique_ptr<CacheWatch>> ObjectCache::Watch(const std::string& prefix,
                                                               int64_t after_revision,
                                                               CacheSink* sink, bool bookmark) {
  // A revision the store has not reached yet cannot be served (kube-apiserver refuses it
  // too). Read before taking mu_: the store's writer takes mu_ while delivering events.
  const int64_t store_revision = after_revision > 0 ? store_->CurrentRevision() : 0;
  if (after_revision > store_revision) {
    return absl::OutOfRangeError("too large resource version: " + std::to_string(after_revision) +
                                 ", current: " + std::to_string(store_revision));
  }
  absl::MutexLock lock(&mu_);
  if (after_revision < 0) {
    for (auto it = objects_.lower_bound(prefix);
         it != objects_.end() && store::HasPrefix(it->first, prefix); ++it) {
      auto event = std::make_shared<CacheEvent>();
      event->type = v1::ADDED;
      event->key = it->first;
      event->revision = it->second.mod_revision;
      event->object = it->second.object;
      sink->OnEvent(event);
    }
  } else {
    if (after_revision < history_floor_) {
      return absl::OutOfRangeError("too old resource version: " + std::to_string(after_revision) +
                                   " (oldest available " + std::to_string(history_floor_) + ")");
    }
    for (const CacheEventPtr& event : history_) {
      if (event->revision > after_revision && event->revision <= revision_ &&
          store::HasPrefix(event->key, prefix)) {
        sink->OnEvent(event);
      }
    }
  }
  if (bookmark) {
    auto event = std::make_shared<CacheEvent>();
    event->type = v1::BOOKMARK;
    event->revision = revision_;
    sink->OnEvent(event);
  }
  const int64_t id = next_sink_id_++;
  sinks_[id] = {prefix, sink};
  return std::unique_ptr<CacheWatch>(new Handle(this, id));
}

void ObjectCache::Detach(int64_t id) {
  absl::MutexLock lock(&mu_);
  sinks_.erase(id);
}

int64_t ObjectCache::revision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

size_t ObjectCache::size() {
  absl::MutexLock lock(&mu_);
  return objects_.size();
}

size_t ObjectCache::watchers() {
  absl::MutexLock lock(&mu_);
  return sinks_.size();
}

size_t ObjectCache::history_events() {
  absl::MutexLock lock(&mu_);
  return history_.size();
}

size_t ObjectCache::history_bytes() {
  absl::MutexLock lock(&mu_);
  return history_bytes_;
}

}  // namespace kaito::server
