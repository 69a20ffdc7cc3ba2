#include "server/controller/rate_limiter.h"

#include <algorithm>

namespace kaito::server {

RateLimiter::RateLimiter(Clock* clock, RateLimiterOptions options)
    : clock_(clock),
      options_(options),
      tokens_(std::max(options.burst, 0)),
      last_refill_(clock->Monotonic()) {}

absl::Duration RateLimiter::When(const std::string& key) {
  absl::MutexLock lock(&mu_);
  return std::max(BackoffLocked(key), ReserveTokenLocked());
}

void RateLimiter::Forget(const std::string& key) {
  absl::MutexLock lock(&mu_);
  failures_.erase(key);
}

int RateLimiter::NumRequeues(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

absl::Duration RateLimiter::BackoffLocked(const std::string& key) {
  const int exponent = failures_[key]++;
  // Past 2^62 the shift would overflow; the cap applies long before in any sane setup.
  if (exponent >= 62) return options_.max_delay;
  // absl::Duration arithmetic saturates to infinity instead of overflowing.
  const absl::Duration backoff = options_.base_delay * (int64_t{1} << exponent);
  return std::min(backoff, options_.max_delay);
}

absl::Duration RateLimiter::ReserveTokenLocked() {
  // A bucket with no rate is turned off, not a bucket that never refills.
  if (options_.qps <= 0) return absl::ZeroDuration();
  const absl::Duration now = clock_->Monotonic();
  if (now > last_refill_) {
    const double refilled = absl::ToDoubleSeconds(now - last_refill_) * options_.qps;
    tokens_ = std::min(tokens_ + refilled, static_cast<double>(std::max(options_.burst, 0)));
    last_refill_ = now;
  }
  tokens_ -= 1;
  if (tokens_ >= 0) return absl::ZeroDuration();
  return absl::Seconds(-tokens_ / options_.qps);
}

}  // namespace kaito::server
