#include "agent/work_serializer.h"

#include <utility>

namespace kaito::agent {

void WorkSerializer::Run(absl::AnyInvocable<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    queue_.push_back(std::move(fn));
    if (draining_) return;
    draining_ = true;
    drainer_ = std::this_thread::get_id();
  }
  Drain();
}

void WorkSerializer::Drain() {
  while (true) {
    absl::AnyInvocable<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (closed_ || queue_.empty()) {
        draining_ = false;
        drainer_ = std::thread::id();
        return;
      }
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

void WorkSerializer::Close() {
  std::deque<absl::AnyInvocable<void()>> dropped;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    dropped.swap(queue_);
    if (draining_ && drainer_ != std::this_thread::get_id()) {
      auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !draining_; };
      mu_.Await(absl::Condition(&idle));
    }
  }
  // The dropped closures are destroyed here, outside the lock: their captures may post.
}

bool WorkSerializer::closed() {
  absl::MutexLock lock(&mu_);
  return closed_;
}

}  // namespace kaito::agent
