#include "server/controller/work_queue.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <utility>

namespace kaito::server {

WorkQueue::WorkQueue(Clock* clock, RateLimiterOptions rate_limiter_options,
                     WorkQueueMetrics metrics)
    : clock_(clock),
      limiter_(clock, rate_limiter_options),
      metrics_(metrics),
      timer_target_(std::make_shared<TimerTarget>()) {
  absl::MutexLock lock(&timer_target_->mu);
  timer_target_->queue = this;
}

WorkQueue::~WorkQueue() {
  ShutDown();
  // Waits for a timer callback that the clock started before `ShutDown` could cancel it;
  // any later one sees a null queue and does nothing.
  absl::MutexLock lock(&timer_target_->mu);
  timer_target_->queue = nullptr;
}

void WorkQueue::Add(const std::string& key) {
  bool marked;
  {
    absl::MutexLock lock(&mu_);
    marked = AddLocked(key);
  }
  if (marked && metrics_.adds != nullptr) metrics_.adds->Increment();
}

bool WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_) return false;
  if (!dirty_.insert(key).second) return false;
  added_at_[key] = clock_->Monotonic();
  // A key being processed is queued again by `Done`, never twice at once.
  if (processing_.contains(key)) return true;
  queue_.push_back(key);
  if (metrics_.depth != nullptr) metrics_.depth->Set(static_cast<double>(queue_.size()));
  return true;
}

void WorkQueue::AddAfter(const std::string& key, absl::Duration delay) {
  bool accepted;
  if (delay <= absl::ZeroDuration()) {
    {
      absl::MutexLock lock(&mu_);
      accepted = !shutting_down_;
    }
    Add(key);
  } else {
    absl::MutexLock lock(&mu_);
    accepted = ArmLocked(key, delay);
  }
  // Counted as client-go counts retries: every delayed add that a live queue accepted.
  if (accepted && metrics_.retries != nullptr) metrics_.retries->Increment();
}

bool WorkQueue::ArmLocked(const std::string& key, absl::Duration delay) {
  if (shutting_down_) return false;
  const absl::Duration due = clock_->Monotonic() + delay;
  auto it = waiting_.find(key);
  if (it != waiting_.end()) {
    if (it->second.due <= due) return true;  // The earlier add wins.
    // When that timer has already started, its callback finds a newer generation and does
    // nothing.
    clock_->Cancel(it->second.timer);
  }
  // The timer id is known only once armed, so the callback matches by generation instead.
  const uint64_t generation = ++next_generation_;
  const Clock::TimerId timer = clock_->RunAfter(delay, [target = timer_target_, key, generation] {
    absl::MutexLock target_lock(&target->mu);
    if (target->queue != nullptr) target->queue->OnTimer(key, generation);
  });
  waiting_[key] = Waiting{timer, due, generation};
  return true;
}

void WorkQueue::OnTimer(const std::string& key, uint64_t generation) {
  bool marked = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiting_.find(key);
    if (it == waiting_.end() || it->second.generation != generation) return;
    waiting_.erase(it);
    marked = AddLocked(key);
  }
  if (marked && metrics_.adds != nullptr) metrics_.adds->Increment();
}

void WorkQueue::AddRateLimited(const std::string& key) {
  {
    absl::MutexLock lock(&mu_);
    // A shut-down queue retries nothing; do not count a failure that leads nowhere.
    if (shutting_down_) return;
  }
  AddAfter(key, limiter_.When(key));
}

void WorkQueue::Forget(const std::string& key) { limiter_.Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) { return limiter_.NumRequeues(key); }

std::optional<std::string> WorkQueue::Get() {
  std::string key;
  absl::Duration waited;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]()
                     ABSL_SHARED_LOCKS_REQUIRED(mu_) { return shutting_down_ || !queue_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (shutting_down_) return std::nullopt;
    key = std::move(queue_.front());
    queue_.pop_front();
    if (metrics_.depth != nullptr) metrics_.depth->Set(static_cast<double>(queue_.size()));
    dirty_.erase(key);
    const absl::Duration now = clock_->Monotonic();
    processing_[key] = now;
    auto added = added_at_.extract(key);
    waited = added.empty() ? absl::ZeroDuration() : now - added.mapped();
  }
  if (metrics_.queue_duration != nullptr) {
    metrics_.queue_duration->Observe(absl::ToDoubleSeconds(waited));
  }
  return key;
}

void WorkQueue::Done(const std::string& key) {
  absl::Duration worked;
  {
    absl::MutexLock lock(&mu_);
    auto it = processing_.find(key);
    if (it == processing_.end()) return;  // Not handed out by `Get`: nothing to end.
    worked = clock_->Monotonic() - it->second;
    processing_.erase(it);
    if (!shutting_down_ && dirty_.contains(key)) {
      queue_.push_back(key);
      if (metrics_.depth != nullptr) metrics_.depth->Set(static_cast<double>(queue_.size()));
    }
  }
  if (metrics_.work_duration != nullptr) {
    metrics_.work_duration->Observe(absl::ToDoubleSeconds(worked));
  }
}

void WorkQueue::ShutDown() {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return;
  shutting_down_ = true;
  for (const auto& [key, waiting] : waiting_) clock_->Cancel(waiting.timer);
  waiting_.clear();
  // Every `Get` blocked in `Await` re-evaluates its condition when the lock is released.
}

bool WorkQueue::ShuttingDown() {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

int WorkQueue::Len() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(queue_.size());
}

int WorkQueue::NumWaiting() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiting_.size());
}

}  // namespace kaito::server
