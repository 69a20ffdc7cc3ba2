#include "common/clock.h"

#include <chrono>

namespace kaito {
namespace internal {

Clock::TimerId TimerTable::Add(absl::Duration due, absl::AnyInvocable<void()> fn) {
  const TimerId id = next_id_++;
  timers_.emplace(std::make_pair(due, id), std::move(fn));
  due_of_[id] = due;
  return id;
}

bool TimerTable::Cancel(TimerId id) {
  auto it = due_of_.find(id);
  if (it == due_of_.end()) return false;
  timers_.erase({it->second, id});
  due_of_.erase(it);
  return true;
}

std::pair<absl::Duration, absl::AnyInvocable<void()>> TimerTable::PopFirst() {
  auto node = timers_.extract(timers_.begin());
  due_of_.erase(node.key().second);
  return {node.key().first, std::move(node.mapped())};
}

}  // namespace internal

RealClock::RealClock() : thread_([this] { Loop(); }) {}

RealClock::~RealClock() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

absl::Duration RealClock::Monotonic() {
  return absl::FromChrono(std::chrono::steady_clock::now().time_since_epoch());
}

Clock::TimerId RealClock::RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  const absl::Duration due = Monotonic() + std::max(delay, absl::ZeroDuration());
  absl::MutexLock lock(&mu_);
  return timers_.Add(due, std::move(fn));
}

bool RealClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return timers_.Cancel(id);
}

void RealClock::Loop() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      // Woken by a new timer or by stopping.
      auto changed = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || !timers_.empty();
      };
      mu_.Await(absl::Condition(&changed));
      continue;
    }
    const absl::Duration due = timers_.next_due();
    const absl::Duration now = Monotonic();
    if (due > now) {
      // Wakes early when an earlier timer is armed or the clock stops.
      auto earlier = [this, due]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
        return stopping_ || timers_.empty() || timers_.next_due() < due;
      };
      mu_.AwaitWithTimeout(absl::Condition(&earlier), due - now);
      continue;
    }
    auto fn = timers_.PopFirst().second;
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

absl::Time FakeClock::Now() {
  absl::MutexLock lock(&mu_);
  return wall_;
}

absl::Duration FakeClock::Monotonic() {
  absl::MutexLock lock(&mu_);
  return mono_;
}

Clock::TimerId FakeClock::RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  return timers_.Add(mono_ + std::max(delay, absl::ZeroDuration()), std::move(fn));
}

bool FakeClock::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  return timers_.Cancel(id);
}

void FakeClock::Advance(absl::Duration d) {
  absl::Duration end;
  {
    absl::MutexLock lock(&mu_);
    end = mono_ + d;
  }
  while (true) {
    absl::AnyInvocable<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (timers_.empty() || timers_.next_due() > end) {
        wall_ += end - mono_;
        mono_ = end;
        return;
      }
      auto [due, first] = timers_.PopFirst();
      if (due > mono_) {
        wall_ += due - mono_;
        mono_ = due;
      }
      fn = std::move(first);
    }
    fn();
  }
}

size_t FakeClock::pending_timers() {
  absl::MutexLock lock(&mu_);
  return timers_.size();
}

absl::Duration FakeClock::next_timer_in() {
  absl::MutexLock lock(&mu_);
  if (timers_.empty()) return absl::InfiniteDuration();
  return timers_.next_due() - mono_;
}

}  // namespace kaito
