#include "server/agents/session_registry.h"

namespace kaito::server {

SessionRegistry::SessionRegistry(ObjectRegistry<v1::Workload>* workloads, Clock* clock)
    : workloads_(workloads), clock_(clock) {}

SessionRegistry::~SessionRegistry() { Stop(); }

absl::Status SessionRegistry::Start() {
  auto watch = workloads_->cache()->Watch(workloads_->Prefix(""), -1, this, false);
  if (!watch.ok()) return watch.status();
  watch_ = std::move(*watch);
  return absl::OkStatus();
}

void SessionRegistry::Stop() {
  watch_.reset();
  absl::MutexLock flush(&flush_mu_);
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  if (flush_timer_ != 0) clock_->Cancel(flush_timer_);
  flush_timer_ = 0;
}

void SessionRegistry::OnEvent(const CacheEventPtr& event) {
  absl::MutexLock lock(&mu_);
  auto node_of = [](const google::protobuf::Message* m) -> std::string {
    if (m == nullptr) return "";
    return static_cast<const v1::Workload&>(*m).spec().node_name();
  };
  const std::string before = node_of(event->previous.get());
  const std::string now = event->type == v1::DELETED ? "" : node_of(event->object.get());
  if (event->type == v1::BOOKMARK) return;
  if (!before.empty() && before != now) {
    placed_[before].erase(event->key);
    MarkDirty(before);
  }
  if (event->type == v1::DELETED) {
    const std::string last = node_of(event->object.get());
    if (!last.empty()) {
      placed_[last].erase(event->key);
      MarkDirty(last);
    }
    return;
  }
  if (!now.empty()) {
    placed_[now].insert(event->key);
    MarkDirty(now);
  }
}

void SessionRegistry::MarkDirty(const std::string& node) {
  // Only nodes with a session need a push; a node that connects later gets its set then.
  if (!sessions_.contains(node)) return;
  dirty_.insert(node);
  if (flush_timer_ == 0 && !stopped_) {
    flush_timer_ = clock_->RunAfter(absl::ZeroDuration(), [this] { Flush(); });
  }
}

void SessionRegistry::Flush() {
  absl::MutexLock flush(&flush_mu_);
  std::set<std::string> dirty;
  {
    absl::MutexLock lock(&mu_);
    flush_timer_ = 0;
    if (stopped_) return;
    dirty.swap(dirty_);
  }
  for (const std::string& node : dirty) {
    std::vector<v1::Workload> desired = DesiredFor(node);
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(node);
    if (it == sessions_.end()) continue;
    it->second->SendDesired(++generation_, std::move(desired));
  }
}

std::vector<v1::Workload> SessionRegistry::DesiredFor(const std::string& node) {
  std::set<std::string> keys;
  {
    absl::MutexLock lock(&mu_);
    auto it = placed_.find(node);
    if (it != placed_.end()) keys = it->second;
  }
  std::vector<v1::Workload> out;
  for (const std::string& key : keys) {
    auto cached = workloads_->cache()->Get(key);
    if (!cached) continue;
    const auto& w = static_cast<const v1::Workload&>(*cached->object);
    if (w.spec().node_name() != node || w.metadata().has_deletion_timestamp()) continue;
    out.push_back(w);
  }
  return out;
}

void SessionRegistry::Register(const std::string& node, SessionHandle* session) {
  absl::MutexLock lock(&mu_);
  auto& slot = sessions_[node];
  // The replaced session is closed under the lock: its stream's end (OnDone) unregisters
  // through this lock, so it cannot be freed meanwhile. Lock order: registry, then stream.
  if (slot != nullptr && slot != session) {
    slot->Close(absl::AbortedError("replaced by a newer session of node " + node));
  }
  slot = session;
  dirty_.insert(node);
  if (flush_timer_ == 0 && !stopped_) {
    flush_timer_ = clock_->RunAfter(absl::ZeroDuration(), [this] { Flush(); });
  }
}

void SessionRegistry::Unregister(const std::string& node, SessionHandle* session) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(node);
  if (it != sessions_.end() && it->second == session) sessions_.erase(it);
}

bool SessionRegistry::Connected(const std::string& node) {
  absl::MutexLock lock(&mu_);
  return sessions_.contains(node);
}

size_t SessionRegistry::sessions() {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace kaito::server
