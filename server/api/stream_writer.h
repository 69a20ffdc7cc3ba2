// The write side of a server stream on gRPC's callback API, shared by the watch streams
// and the agents' sessions: items are queued, at most one write is in flight, Finish is
// called exactly once and never while a write is in flight (then OnWriteDone calls it),
// and nothing is written once the end was asked for.
//
// Locking: the writer does not own a mutex; every method runs under the reactor's mutex
// `mu`, given at construction, so that the reactor's own state and the queue change
// together. `start_write` and `finish` are the reactor's StartWrite and Finish; they are
// called with `mu` held, as the callback API allows (they do not block).
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <optional>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/rpc_metrics.h"

namespace kaito::server {

template <typename Item, typename Message>
class StreamWriter {
 public:
  // Fills the message to send from the next item (at write time, so that a long queue
  // holds items, not serialized messages).
  using Fill = std::function<void(Item item, Message* message)>;

  // `method` (may be null) counts the stream: started now, each message sent, and its
  // status and lifetime at the end.
  StreamWriter(absl::Mutex* mu, std::function<void(const Message*)> start_write,
               std::function<void(const grpc::Status&)> finish, Fill fill,
               RpcMetrics::Method* method = nullptr)
      : mu_(mu),
        start_write_(std::move(start_write)),
        finish_(std::move(finish)),
        fill_(std::move(fill)),
        method_(method),
        start_(absl::Now()) {
    if (method_) method_->Started();
  }

  // Queues `item` and writes it when no write is in flight. Dropped once finishing.
  void EnqueueLocked(Item item) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    if (finish_status_) return;
    queue_.push_back(std::move(item));
    if (!writing_) WriteNextLocked();
  }

  // Drops the queued items `pred` accepts (e.g. an older full-state message that a newer
  // one replaces).
  template <typename Pred>
  void DropQueuedLocked(Pred pred) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    for (auto it = queue_.begin(); it != queue_.end();) it = pred(*it) ? queue_.erase(it) : it + 1;
  }

  size_t queued() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) { return queue_.size(); }
  bool writing() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) { return writing_; }
  bool finishing() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) { return finish_status_.has_value(); }

  // The stream ends with `status` (the first one asked for wins): the queue is dropped,
  // and Finish is called now, or by OnWriteDoneLocked when a write is in flight.
  void RequestFinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    if (finish_status_) return;
    finish_status_ = status;
    queue_.clear();
    if (!writing_) FinishLocked();
  }

  // The reactor's OnWriteDone. `ok` false: the client is gone (CANCELLED).
  void OnWriteDoneLocked(bool ok) ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    writing_ = false;
    if (!ok) RequestFinishLocked(grpc::Status::CANCELLED);
    if (finish_status_) {
      FinishLocked();
      return;
    }
    WriteNextLocked();
  }

 private:
  void FinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    if (method_) method_->Record(*finish_status_, absl::ToDoubleSeconds(absl::Now() - start_));
    finish_(*finish_status_);
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(*mu_) {
    if (finish_status_ || queue_.empty()) return;
    Item item = std::move(queue_.front());
    queue_.pop_front();
    current_.Clear();
    fill_(std::move(item), &current_);
    writing_ = true;
    if (method_) method_->Sent();
    start_write_(&current_);
  }

  absl::Mutex* const mu_;
  const std::function<void(const Message*)> start_write_;
  const std::function<void(const grpc::Status&)> finish_;
  const Fill fill_;
  RpcMetrics::Method* const method_;
  const absl::Time start_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(*mu_);
  // The message being written; it must stay alive until OnWriteDone.
  Message current_ ABSL_GUARDED_BY(*mu_);
  bool writing_ ABSL_GUARDED_BY(*mu_) = false;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(*mu_);
  bool finish_called_ ABSL_GUARDED_BY(*mu_) = false;
};

}  // namespace kaito::server
