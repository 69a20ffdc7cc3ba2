// The server side of every Watch RPC: events from a kind's cache to one client stream.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/label_selector.h"
#include "common/rpc_metrics.h"
#include "server/api/stream_writer.h"
#include "server/registry/object_cache.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// Streams the events of one kind from its cache to one client. `T` is the object type,
// `EventMessage` the stream's message (type, object, resource_version), `Request` has
// namespace, label_selector, resource_version and name. Owns its cache registration;
// deletes itself in OnDone. Finish is called exactly once and never while a write is in
// flight; the backlog of a slow client is bounded (ABORTED, resumable).
template <typename T, typename EventMessage, typename Request>
class WatchReactor : public grpc::ServerWriteReactor<EventMessage>, public CacheSink {
 public:
  WatchReactor(ObjectRegistry<T>* registry, RpcMetrics* metrics, size_t max_backlog,
               const Request& request)
      : metrics_(metrics),
        max_backlog_(max_backlog),
        name_(request.name()),
        writer_(
            &mu_, [this](const EventMessage* m) { this->StartWrite(m); },
            [this](const grpc::Status& s) { this->Finish(s); },
            [this](CacheEventPtr event, EventMessage* m) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              // Called by the writer under mu_.
              m->set_type(event->type);
              m->set_resource_version(std::to_string(event->revision));
              if (event->object) *m->mutable_object() = static_cast<const T&>(*event->object);
              last_sent_ = event->revision;
            }) {
    if (metrics_) metrics_->open_watches().Increment();
    auto selector = LabelSelectorMatcher::Parse(request.label_selector());
    if (!selector.ok()) {
      FinishNow(selector.status());
      return;
    }
    selector_ = std::move(*selector);
    auto revision = ObjectRegistry<T>::ParseWatchRevision(request.resource_version());
    if (!revision.ok()) {
      FinishNow(revision.status());
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      initial_done_ = *revision >= 0;
    }
    std::string ns = request.namespace_();
    // With no resourceVersion the cache sends the initial state and then a BOOKMARK at
    // the revision it reflects, in order, before any live event.
    auto watch = registry->cache()->Watch(registry->Prefix(ns), *revision, this,
                                          /*bookmark=*/*revision < 0);
    if (!watch.ok()) {
      FinishNow(watch.status());
      return;
    }
    absl::MutexLock lock(&mu_);
    watch_ = std::move(*watch);
  }

  void OnEvent(const CacheEventPtr& event) override {
    CacheEventPtr send = Filter(event);
    if (!send) return;
    absl::MutexLock lock(&mu_);
    EnqueueLocked(send);
  }

  void OnWriteDone(bool ok) override {
    // ok false: the client is gone; OnCancel or OnDone follows.
    absl::MutexLock lock(&mu_);
    writer_.OnWriteDoneLocked(ok);
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    writer_.RequestFinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    std::unique_ptr<CacheWatch> watch;
    {
      absl::MutexLock lock(&mu_);
      watch = std::move(watch_);
    }
    watch.reset();  // Detaches from the cache; no OnEvent after this.
    if (metrics_) metrics_->open_watches().Decrement();
    delete this;
  }

 private:
  bool Matches(const google::protobuf::Message* object) const {
    if (object == nullptr) return false;
    const auto& meta = Metadata(*object);
    return (name_.empty() || meta.name() == name_) && selector_.Matches(meta.labels());
  }

  // Applies the name and label filter. A modified object that starts matching is sent
  // as ADDED, one that stops matching as DELETED, as Kubernetes' filtered watches do.
  CacheEventPtr Filter(const CacheEventPtr& event) const {
    if (event->type == v1::BOOKMARK) return event;
    const bool now = Matches(event->object.get());
    if (event->type != v1::MODIFIED || !event->previous) return now ? event : nullptr;
    const bool before = Matches(event->previous.get());
    if (now == before) return now ? event : nullptr;
    auto changed = std::make_shared<CacheEvent>(*event);
    changed->type = now ? v1::ADDED : v1::DELETED;
    return changed;
  }

  void FinishNow(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    writer_.RequestFinishLocked(ToGrpcStatus(status));
  }

  void EnqueueLocked(const CacheEventPtr& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writer_.finishing()) return;
    // The initial state (before the bookmark) is exempt from the backlog limit: it is
    // bounded by the number of objects, and its events are not in revision order, so
    // resuming from the middle of it would skip objects.
    if (event->type == v1::BOOKMARK) initial_done_ = true;
    if (initial_done_ && writer_.queued() >= max_backlog_) {
      writer_.RequestFinishLocked(grpc::Status(grpc::StatusCode::ABORTED,
                                               "watch fell behind; resume from resourceVersion " +
                                                   std::to_string(last_sent_)));
      return;
    }
    writer_.EnqueueLocked(event);
  }

  RpcMetrics* metrics_;
  const size_t max_backlog_;
  const std::string name_;
  LabelSelectorMatcher selector_;
  absl::Mutex mu_;
  std::unique_ptr<CacheWatch> watch_ ABSL_GUARDED_BY(mu_);
  // Set by the bookmark that ends the initial state, or at once for a resumed watch.
  bool initial_done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_sent_ ABSL_GUARDED_BY(mu_) = 0;
  // After mu_, which it uses.
  StreamWriter<CacheEventPtr, EventMessage> writer_;
};

}  // namespace kaito::server
