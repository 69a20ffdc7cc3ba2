#include "server/store/memory_store.h"

namespace kaito::server::store {

class MemoryStore::Handle : public WatchHandle {
 public:
  Handle(MemoryStore* store, int64_t id) : store_(store), id_(id) {}
  ~Handle() override { store_->RemoveWatcher(id_); }

 private:
  MemoryStore* store_;
  int64_t id_;
};

MemoryStore::~MemoryStore() = default;

absl::StatusOr<int64_t> MemoryStore::Apply(Event::Type type, std::string key,
                                           std::string value, int64_t expected_revision) {
  absl::MutexLock deliver(&deliver_mu_);
  Event event;
  {
    absl::MutexLock lock(&mu_);
    ++write_calls_;
    auto it = data_.find(key);
    const int64_t current = it == data_.end() ? 0 : it->second.mod_revision;
    absl::Status pre = CheckPrecondition(key, current, expected_revision,
                                         type == Event::Type::kDelete);
    if (!pre.ok()) return pre;
    const int64_t rev = ++revision_;
    event.type = type;
    if (type == Event::Type::kPut) {
      KeyValue& kv = data_[key];
      if (kv.create_revision == 0) kv.create_revision = rev;
      kv.key = key;
      kv.value = std::move(value);
      kv.mod_revision = rev;
      event.kv = kv;
    } else {
      event.kv = it->second;
      event.kv.mod_revision = rev;
      data_.erase(it);
    }
    history_.push_back(event);
    // Compact a quarter of the retention at a time, so that erasing stays amortized.
    if (history_retention_ > 0 &&
        static_cast<int64_t>(history_.size()) > history_retention_ + history_retention_ / 4) {
      const int64_t drop = static_cast<int64_t>(history_.size()) - history_retention_;
      compacted_ = history_[drop - 1].kv.mod_revision;
      history_.erase(history_.begin(), history_.begin() + drop);
    }
  }
  for (auto& [id, watcher] : watchers_) {
    if (HasPrefix(event.kv.key, watcher.prefix)) watcher.callback({event});
  }
  return event.kv.mod_revision;
}

void MemoryStore::Put(std::string key, std::string value, int64_t expected_revision,
                      WriteCallback done) {
  std::move(done)(Apply(Event::Type::kPut, std::move(key), std::move(value), expected_revision));
}

void MemoryStore::Delete(std::string key, int64_t expected_revision, WriteCallback done) {
  std::move(done)(Apply(Event::Type::kDelete, std::move(key), "", expected_revision));
}

absl::StatusOr<KeyValue> MemoryStore::Get(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = data_.find(key);
  if (it == data_.end()) return absl::NotFoundError("key " + key + " not found");
  return it->second;
}

absl::StatusOr<ListResult> MemoryStore::List(const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  ListResult result;
  result.revision = revision_;
  for (auto it = data_.lower_bound(prefix); it != data_.end() && HasPrefix(it->first, prefix);
       ++it) {
    result.items.push_back(it->second);
  }
  return result;
}

absl::StatusOr<std::unique_ptr<WatchHandle>> MemoryStore::Watch(const std::string& prefix,
                                                                 int64_t after_revision,
                                                                 WatchCallback callback) {
  absl::MutexLock deliver(&deliver_mu_);
  std::vector<Event> backlog;
  int64_t id;
  {
    absl::MutexLock lock(&mu_);
    if (after_revision < compacted_) {
      return absl::OutOfRangeError("revision " + std::to_string(after_revision) +
                                   " is compacted (oldest available " +
                                   std::to_string(compacted_) + ")");
    }
    for (const Event& e : history_) {
      if (e.kv.mod_revision > after_revision && HasPrefix(e.kv.key, prefix)) {
        backlog.push_back(e);
      }
    }
    id = next_watcher_id_++;
  }
  if (!backlog.empty()) callback(backlog);
  watchers_[id] = Watcher{prefix, std::move(callback)};
  return std::unique_ptr<WatchHandle>(new Handle(this, id));
}

void MemoryStore::RemoveWatcher(int64_t id) {
  absl::MutexLock deliver(&deliver_mu_);
  watchers_.erase(id);
}

int64_t MemoryStore::CurrentRevision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

int64_t MemoryStore::CompactedRevision() {
  absl::MutexLock lock(&mu_);
  return compacted_;
}

absl::Status MemoryStore::Compact(int64_t revision) {
  absl::MutexLock lock(&mu_);
  if (revision > revision_) return absl::OutOfRangeError("cannot compact the future");
  if (revision <= compacted_) return absl::OkStatus();
  std::erase_if(history_, [revision](const Event& e) { return e.kv.mod_revision <= revision; });
  compacted_ = revision;
  return absl::OkStatus();
}

}  // namespace kaito::server::store
