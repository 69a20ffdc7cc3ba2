// The server side of every Watch RPC: events from a kind's cache to one client stream.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/label_selector.h"
#include "common/rpc_metrics.h"
#include "server/api/stream_quota.h"
#include "server/api/stream_writer.h"
#include "server/registry/object_cache.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// Default of the most events a watch stream may have queued before it is closed with
// ABORTED (the client resumes from the last resourceVersion it saw).
inline constexpr size_t kMaxWatchBacklog = 20000;

// How far one watch stream may fall behind before it is closed (ABORTED, resumable from
// the last resourceVersion it was sent). Events are shared with the cache's history, so
// the bytes a stalled watcher pins are bounded by the larger of its backlog bound and
// the history's.
struct WatchLimits {
  size_t backlog_events = kMaxWatchBacklog;
  size_t backlog_bytes = 16 << 20;
  // A write to the client that has not completed for this long: the client is not
  // reading, and the stream is cancelled at the next event.
  std::chrono::milliseconds stall_timeout{std::chrono::seconds(60)};
};

// Streams the events of one kind from its cache to one client. `T` is the object type,
// `EventMessage` the stream's message (type, object, resource_version), `Request` has
// namespace, label_selector, resource_version and name. Owns its cache registration;
// deletes itself in OnDone. Finish is called exactly once and never while a write is in
// flight; the backlog of a slow client is bounded (ABORTED, resumable).
template <typename T, typename EventMessage, typename Request>
class WatchReactor : public grpc::ServerWriteReactor<EventMessage>, public CacheSink {
 public:
  // `quota` (may be null) caps open watches in total and per connection.
  // `allowed` not OK: the watch is refused with it (authorization), before anything else.
  // `method` (may be null) counts the stream in the gRPC series.
  WatchReactor(ObjectRegistry<T>* registry, RpcMetrics* metrics, RpcMetrics::Method* method,
               const WatchLimits& limits, StreamQuota* quota, grpc::CallbackServerContext* ctx,
               const Request& request, const absl::Status& allowed = absl::OkStatus())
      : metrics_(metrics),
        limits_(limits),
        ctx_(ctx),
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
              // FIFO: the initial state leaves the queue first.
              if (initial_queued_ > 0) {
                --initial_queued_;
              } else {
                queued_bytes_ -= event->bytes;
              }
              write_started_ = std::chrono::steady_clock::now();
            },
            method) {
    if (metrics_) metrics_->open_watches().Increment();
    if (!allowed.ok()) {
      FinishNow(allowed);
      return;
    }
    if (quota) {
      const std::string peer = ctx->peer();
      if (absl::Status s = quota->Acquire(peer); !s.ok()) {
        FinishNow(s);
        return;
      }
      quota_ = quota;
      peer_ = peer;
    }
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
    // A resumed watch: the history replayed above (bounded by the cache's history) is
    // exempt from the limits like an initial state, so that a client far behind is not
    // cut off before it can catch up.
    if (*revision >= 0) initial_done_ = true;
  }

  void OnEvent(const CacheEventPtr& event) override {
    CacheEventPtr send = Filter(event);
    if (!send) return;
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      cancel = EnqueueLocked(send);
    }
    // Outside mu_: cancelling may run OnCancel at once. The reactor is alive: OnDone
    // detaches from the cache, which waits for this call to return.
    if (cancel) ctx_->TryCancel();
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
    if (quota_) quota_->Release(peer_);
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

  // Queues `event`, or ends a stream that fell too far behind. True: the client has not
  // taken a write for too long, and the stream must be cancelled (a Finish would wait
  // for that write).
  bool EnqueueLocked(const CacheEventPtr& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writer_.finishing()) return false;
    // The initial state (before the bookmark) is exempt from the backlog limits: it is
    // bounded by the number of objects, and its events are not in revision order, so
    // resuming from the middle of it would skip objects.
    if (!initial_done_) {
      ++initial_queued_;
      if (event->type == v1::BOOKMARK) initial_done_ = true;
    } else {
      if (writer_.writing() &&
          std::chrono::steady_clock::now() - write_started_ > limits_.stall_timeout) {
        writer_.RequestFinishLocked(grpc::Status(
            grpc::StatusCode::ABORTED,
            "watch client took no event for " + std::to_string(limits_.stall_timeout.count()) +
                " ms; resume from resourceVersion " + std::to_string(last_sent_)));
        return true;
      }
      if (writer_.queued() >= limits_.backlog_events ||
          queued_bytes_ + event->bytes > limits_.backlog_bytes) {
        writer_.RequestFinishLocked(grpc::Status(
            grpc::StatusCode::ABORTED,
            "watch fell behind (" + std::to_string(writer_.queued()) + " events, " +
                std::to_string(queued_bytes_) + " bytes queued); resume from resourceVersion " +
                std::to_string(last_sent_)));
        return false;
      }
      queued_bytes_ += event->bytes;
    }
    writer_.EnqueueLocked(event);
    return false;
  }

  RpcMetrics* metrics_;
  const WatchLimits limits_;
  grpc::CallbackServerContext* const ctx_;
  StreamQuota* quota_ = nullptr;  // Set when a slot was taken; released in OnDone.
  std::string peer_;
  const std::string name_;
  LabelSelectorMatcher selector_;
  absl::Mutex mu_;
  std::unique_ptr<CacheWatch> watch_ ABSL_GUARDED_BY(mu_);
  // Set by the bookmark that ends the initial state, or once a resumed watch's replay
  // is queued.
  bool initial_done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_sent_ ABSL_GUARDED_BY(mu_) = 0;
  // Queued events of the initial state (exempt from the limits), bytes of the others, and
  // when the write in flight started.
  size_t initial_queued_ ABSL_GUARDED_BY(mu_) = 0;
  size_t queued_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point write_started_ ABSL_GUARDED_BY(mu_);
  // After mu_, which it uses.
  StreamWriter<CacheEventPtr, EventMessage> writer_;
};

}  // namespace kaito::server
