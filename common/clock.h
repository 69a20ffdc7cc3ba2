// Time, injected: wall time, monotonic time and timers. Daemons construct one
// `RealClock` in their composition root; tests use `FakeClock` and advance it by hand,
// so that leases, requeue-after and backoff are tested without sleeping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace kaito {

class Clock {
 public:
  using TimerId = uint64_t;

  virtual ~Clock() = default;
  // Wall time: for timestamps that users read (creationTimestamp, conditions).
  virtual absl::Time Now() = 0;
  // Monotonic time since an arbitrary origin; never goes back. For durations, leases
  // and deadlines.
  virtual absl::Duration Monotonic() = 0;
  // Runs `fn` once, `delay` from now (monotonic), on the clock's timer thread (or, for
  // the fake, inside `Advance`). `fn` must not block: it should only enqueue work.
  // Returns an id for `Cancel`; never 0.
  virtual TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) = 0;
  // Cancels a timer that has not started; false when it already ran or is unknown.
  virtual bool Cancel(TimerId id) = 0;
};

namespace internal {

// Armed timers ordered by (due time, id), so that timers due at the same time run in the
// order they were armed. Not thread-safe: its owner's lock guards it.
class TimerTable {
 public:
  using TimerId = Clock::TimerId;
  TimerId Add(absl::Duration due, absl::AnyInvocable<void()> fn);
  bool Cancel(TimerId id);
  bool empty() const { return timers_.empty(); }
  size_t size() const { return timers_.size(); }
  // The due time of the first timer; only when not empty.
  absl::Duration next_due() const { return timers_.begin()->first.first; }
  // Removes the first timer and returns its due time and function; only when not empty.
  std::pair<absl::Duration, absl::AnyInvocable<void()>> PopFirst();

 private:
  std::map<std::pair<absl::Duration, TimerId>, absl::AnyInvocable<void()>> timers_;
  std::map<TimerId, absl::Duration> due_of_;
  TimerId next_id_ = 1;
};

}  // namespace internal

// The system clock with one timer thread. Destroying it cancels the timers that have not
// run and waits for one that is running.
class RealClock : public Clock {
 public:
  RealClock();
  ~RealClock() override;
  RealClock(const RealClock&) = delete;
  RealClock& operator=(const RealClock&) = delete;

  absl::Time Now() override { return absl::Now(); }
  absl::Duration Monotonic() override;
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) override;
  bool Cancel(TimerId id) override;

 private:
  void Loop();

  absl::Mutex mu_;
  internal::TimerTable timers_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// A clock that moves only when told. `Advance` runs every timer that falls due, in due
// order, on the calling thread, with the clock set to each timer's due time; timers armed
// by those callbacks run too when they fall inside the advanced window.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000)) : wall_(start) {}

  absl::Time Now() override;
  absl::Duration Monotonic() override;
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) override;
  bool Cancel(TimerId id) override;

  void Advance(absl::Duration d);
  // Timers armed and not yet run.
  size_t pending_timers();
  // The delay until the next timer, or InfiniteDuration when none is armed.
  absl::Duration next_timer_in();

 private:
  absl::Mutex mu_;
  absl::Time wall_ ABSL_GUARDED_BY(mu_);
  absl::Duration mono_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  internal::TimerTable timers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito
