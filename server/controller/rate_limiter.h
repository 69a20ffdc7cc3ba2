// How long a key waits before it is retried: client-go's default controller rate limiter.
#pragma once

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace kaito::server {

struct RateLimiterOptions {
  // Per-key exponential backoff: the n-th consecutive failure (from 0) waits
  // `base_delay * 2^n`, never more than `max_delay`.
  absl::Duration base_delay = absl::Milliseconds(5);
  absl::Duration max_delay = absl::Seconds(1000);
  // Global token bucket shared by all keys: `qps` tokens a second, at most `burst` saved up.
  // It bounds the overall retry rate when many keys fail at once.
  double qps = 10.0;
  int burst = 100;
};

// The maximum of a per-key exponential backoff and a global token bucket, as client-go's
// `DefaultControllerRateLimiter` (`MaxOf(ItemExponentialFailureRateLimiter,
// BucketRateLimiter)`). The bucket reads time only from the injected `Clock` (monotonic),
// so tests drive it with a `FakeClock`.
//
// Thread-safe; every method takes the limiter's own lock briefly and never calls out.
// `clock` is not owned and must outlive the limiter.
class RateLimiter {
 public:
  explicit RateLimiter(Clock* clock, RateLimiterOptions options = {});
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Counts one more failure of `key` and returns how long it must wait before its next
  // try: the larger of its backoff and the bucket's delay. Every call takes one token from
  // the bucket (the bucket may go into debt; the delay pays the debt back).
  absl::Duration When(const std::string& key);
  // Forgets `key`'s failures: its next `When` starts again at `base_delay`. The bucket is
  // not refunded.
  void Forget(const std::string& key);
  // The number of failures of `key` since it was last forgotten.
  int NumRequeues(const std::string& key);

  const RateLimiterOptions& options() const { return options_; }

 private:
  absl::Duration BackoffLocked(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration ReserveTokenLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const RateLimiterOptions options_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  // Tokens in the bucket at `last_refill_` (monotonic); negative when reservations are in
  // debt.
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Duration last_refill_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::server
