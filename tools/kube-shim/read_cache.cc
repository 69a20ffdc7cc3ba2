#include "tools/kube-shim/read_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "common/backoff.h"

namespace kaito::shim {
namespace {

std::string Key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

}  // namespace

std::shared_ptr<const std::string> CachedWorkspace::Json(
    const std::string& version, const std::function<std::string()>& encode) const {
  {
    absl::MutexLock lock(&mu_);
    auto it = json_.find(version);
    if (it != json_.end()) return it->second;
  }
  // Encoded outside the lock; two GETs racing here encode twice and keep one.
  auto encoded = std::make_shared<const std::string>(encode());
  absl::MutexLock lock(&mu_);
  return json_.emplace(version, std::move(encoded)).first->second;
}

WorkspaceReadCache::WorkspaceReadCache(KindBackend* backend, ReadCacheOptions options)
    : backend_(backend), options_(std::move(options)) {}

WorkspaceReadCache::~WorkspaceReadCache() { Stop(); }

void WorkspaceReadCache::Start() {
  if (options_.authorization_ttl <= absl::ZeroDuration()) return;
  thread_ = std::thread([this] { Run(); });
}

void WorkspaceReadCache::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    ready_ = false;
    if (stream_ != nullptr) stream_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

bool WorkspaceReadCache::ready() {
  absl::MutexLock lock(&mu_);
  return ready_;
}

int64_t WorkspaceReadCache::revision() {
  absl::MutexLock lock(&mu_);
  return revision_;
}

size_t WorkspaceReadCache::size() {
  absl::MutexLock lock(&mu_);
  return objects_.size();
}

void WorkspaceReadCache::Run() {
  JitteredBackoff backoff(options_.retry_initial, options_.retry_cap);
  bool refused_logged = false;
  while (true) {
    bool progressed = false;
    const grpc::Status status = Follow(&progressed);
    absl::MutexLock lock(&mu_);
    ready_ = false;
    if (stopping_) return;
    if (progressed) {
      backoff.Reset();
      refused_logged = false;
    }
    const bool refused = status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
                         status.error_code() == grpc::StatusCode::PERMISSION_DENIED;
    if (refused && !refused_logged) {
      spdlog::warn(
          "read cache: kaito-server refuses the shim's own watch of workspaces ({}); every GET "
          "goes to kaito-server (give the shim a client certificate allowed to list and watch "
          "workspaces in every namespace)",
          status.error_message());
      refused_logged = true;
    } else if (!refused && progressed) {
      spdlog::info("read cache: the watch of workspaces ended ({}); reloading",
                   status.error_message());
    }
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    mu_.AwaitWithTimeout(absl::Condition(&stop), backoff.Next());
    if (stopping_) return;
  }
}

grpc::Status WorkspaceReadCache::Follow(bool* progressed) {
  CallOptions call;  // The shim's own identity, no deadline.
  WatchQuery query;  // Every namespace, from the initial state.
  std::unique_ptr<WatchStream> stream = backend_->Watch(call, query);
  if (!stream) return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "no watch");
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return grpc::Status::CANCELLED;
    stream_ = stream.get();
  }
  // The initial state is gathered apart and swapped in at its bookmark, so that a reload
  // never serves a half-loaded copy.
  absl::flat_hash_map<std::string, std::shared_ptr<const CachedWorkspace>> initial;
  bool live = false;
  while (true) {
    WatchEvent event;
    const WatchStream::Next next = stream->Wait(absl::Seconds(1), &event);
    if (next == WatchStream::Next::kIdle) continue;
    if (next == WatchStream::Next::kEnd) break;
    int64_t revision = 0;
    if (!absl::SimpleAtoi(event.resource_version, &revision)) continue;
    if (event.type == "BOOKMARK") {
      if (live) continue;
      absl::MutexLock lock(&mu_);
      objects_.swap(initial);
      initial.clear();
      revision_ = revision;
      ready_ = !stopping_;
      live = true;
      *progressed = true;
      spdlog::info(
          "read cache: {} workspaces at revision {}; GETs of workspaces are answered "
          "from it",
          objects_.size(), revision);
      continue;
    }
    if (event.object == nullptr || event.object->GetDescriptor() != v1::Workspace::descriptor()) {
      continue;
    }
    std::unique_ptr<v1::Workspace> object(static_cast<v1::Workspace*>(event.object.release()));
    const std::string key = Key(object->metadata().namespace_(), object->metadata().name());
    if (!live) {
      if (event.type != "DELETED") {
        initial[key] = std::make_shared<const CachedWorkspace>(std::move(object));
      }
      continue;
    }
    absl::MutexLock lock(&mu_);
    if (event.type == "DELETED") {
      objects_.erase(key);
    } else {
      objects_[key] = std::make_shared<const CachedWorkspace>(std::move(object));
    }
    if (revision > revision_) revision_ = revision;
  }
  absl::MutexLock lock(&mu_);
  stream_ = nullptr;
  ready_ = false;
  return stream->status();
}

absl::StatusOr<int64_t> WorkspaceReadCache::ServerRevision(absl::Time deadline) {
  absl::MutexLock lock(&sync_mu_);
  // A round that started before this call may have read an older revision: wait for one
  // that starts from now on.
  const int64_t wanted = rounds_started_ + 1;
  while (rounds_finished_ < wanted) {
    if (!round_in_flight_) {
      const int64_t round = ++rounds_started_;
      round_in_flight_ = true;
      absl::StatusOr<int64_t> result;
      {
        sync_mu_.Unlock();
        CallOptions call;
        call.deadline = deadline;
        ListQuery query;
        query.page_size = 1;
        ListResult list;
        const grpc::Status s = backend_->List(call, query, &list);
        int64_t revision = 0;
        if (!s.ok()) {
          result = absl::UnavailableError(s.error_message());
        } else if (!absl::SimpleAtoi(list.resource_version, &revision)) {
          result = absl::InternalError("kaito-server's list has no resourceVersion");
        } else {
          result = revision;
        }
        sync_mu_.Lock();
      }
      round_in_flight_ = false;
      rounds_finished_ = round;
      last_round_ = result;
      continue;
    }
    auto done = [this, wanted]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(sync_mu_) {
      return rounds_finished_ >= wanted || !round_in_flight_;
    };
    if (!sync_mu_.AwaitWithDeadline(absl::Condition(&done), deadline)) {
      return absl::DeadlineExceededError("waited too long for kaito-server's revision");
    }
  }
  return last_round_;
}

bool WorkspaceReadCache::ReadyAndAllowed(const std::string& authorization,
                                         const std::string& ns) {
  absl::MutexLock lock(&mu_);
  if (!ready_) return false;
  auto it = allowed_.find({authorization, ns});
  if (it == allowed_.end()) return false;
  if (it->second > absl::Now()) return true;
  allowed_.erase(it);
  return false;
}

void WorkspaceReadCache::Learn(const std::string& authorization, const std::string& ns,
                               const grpc::Status& answer) {
  if (options_.authorization_ttl <= absl::ZeroDuration()) return;
  if (!answer.ok() && answer.error_code() != grpc::StatusCode::NOT_FOUND) return;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&mu_);
  if (allowed_.size() >= options_.max_authorizations) {
    for (auto it = allowed_.begin(); it != allowed_.end();) {
      it = it->second <= now ? allowed_.erase(it) : std::next(it);
    }
    if (allowed_.size() >= options_.max_authorizations) allowed_.clear();
  }
  allowed_[{authorization, ns}] = now + options_.authorization_ttl;
}

WorkspaceReadCache::Answer WorkspaceReadCache::Get(const std::string& authorization,
                                                   const std::string& ns, const std::string& name,
                                                   absl::Time deadline,
                                                   std::shared_ptr<const CachedWorkspace>* out) {
  if (!ReadyAndAllowed(authorization, ns)) return Answer::kAskServer;
  const absl::Time wait_until = std::min(deadline, absl::Now() + options_.sync_timeout);
  absl::StatusOr<int64_t> wanted = ServerRevision(wait_until);
  if (!wanted.ok()) return Answer::kAskServer;
  absl::MutexLock lock(&mu_);
  auto caught_up = [this, &wanted]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !ready_ || revision_ >= *wanted;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&caught_up), wait_until) || !ready_) {
    return Answer::kAskServer;
  }
  auto it = objects_.find(Key(ns, name));
  if (it == objects_.end()) return Answer::kNotFound;
  *out = it->second;
  return Answer::kFound;
}

}  // namespace kaito::shim
