#include "server/controller/rate_limiter.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/clock.h"

namespace kaito::server {
namespace {

// The bucket computes its delay in floating point; a microsecond is far below anything that
// matters to a retry.
void ExpectNear(absl::Duration actual, absl::Duration expected) {
  EXPECT_LE(absl::AbsDuration(actual - expected), absl::Microseconds(1))
      << "actual " << actual << ", expected " << expected;
}

TEST(RateLimiterTest, BackoffDoublesFromFiveMillisecondsUpToTheCap) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  // 5 ms * 2^n stays under 1000 s up to n = 17 (655.36 s); n = 18 would be 1310.72 s.
  for (int n = 0; n < 18; ++n) {
    EXPECT_EQ(limiter.When("a"), absl::Milliseconds(5) * (int64_t{1} << n)) << "failure " << n;
  }
  for (int n = 18; n < 30; ++n) EXPECT_EQ(limiter.When("a"), absl::Seconds(1000));
  EXPECT_EQ(limiter.NumRequeues("a"), 30);
}

TEST(RateLimiterTest, BackoffNeverOverflowsAfterManyFailures) {
  FakeClock clock;
  RateLimiter limiter(&clock, {.base_delay = absl::Milliseconds(5),
                               .max_delay = absl::Seconds(1000),
                               .qps = 0});  // Bucket off.
  for (int n = 0; n < 200; ++n) {
    const absl::Duration delay = limiter.When("a");
    EXPECT_GT(delay, absl::ZeroDuration());
    EXPECT_LE(delay, absl::Seconds(1000));
  }
  EXPECT_EQ(limiter.When("a"), absl::Seconds(1000));
}

TEST(RateLimiterTest, ForgetResetsOneKeyOnly) {
  FakeClock clock;
  RateLimiter limiter(&clock);
  limiter.When("a");
  limiter.When("a");
  limiter.When("b");
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(20));
  EXPECT_EQ(limiter.NumRequeues("a"), 3);

  limiter.Forget("a");
  EXPECT_EQ(limiter.NumRequeues("a"), 0);
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(5));
  EXPECT_EQ(limiter.When("b"), absl::Milliseconds(10));
}

TEST(RateLimiterTest, BaseAndCapAreConfigurable) {
  FakeClock clock;
  RateLimiter limiter(&clock, {.base_delay = absl::Seconds(1), .max_delay = absl::Seconds(5)});
  EXPECT_EQ(limiter.When("a"), absl::Seconds(1));
  EXPECT_EQ(limiter.When("a"), absl::Seconds(2));
  EXPECT_EQ(limiter.When("a"), absl::Seconds(4));
  EXPECT_EQ(limiter.When("a"), absl::Seconds(5));
  EXPECT_EQ(limiter.When("a"), absl::Seconds(5));
}

TEST(RateLimiterTest, TokenBucketLimitsABurstAcrossKeys) {
  FakeClock clock;
  // No backoff, so every delay below is the bucket's; default 10 per second, burst 100.
  RateLimiter limiter(&clock, {.base_delay = absl::ZeroDuration()});
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(limiter.When(absl::StrCat("key-", i)), absl::ZeroDuration()) << "key " << i;
  }
  // The burst is spent: each further key waits 100 ms more than the one before.
  ExpectNear(limiter.When("key-100"), absl::Milliseconds(100));
  ExpectNear(limiter.When("key-101"), absl::Milliseconds(200));
  ExpectNear(limiter.When("key-102"), absl::Milliseconds(300));

  // One second refills 10 tokens, 3 of which pay the debt.
  clock.Advance(absl::Seconds(1));
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(limiter.When(absl::StrCat("late-", i)), absl::ZeroDuration());
  ExpectNear(limiter.When("late-7"), absl::Milliseconds(100));

  // Refill stops at the burst however long the clock runs.
  clock.Advance(absl::Hours(1));
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(limiter.When(absl::StrCat("next-", i)), absl::ZeroDuration());
  ExpectNear(limiter.When("next-100"), absl::Milliseconds(100));
}

TEST(RateLimiterTest, DelayIsTheLargerOfBackoffAndBucket) {
  FakeClock clock;
  RateLimiter limiter(&clock, {.base_delay = absl::Milliseconds(5),
                               .max_delay = absl::Seconds(1000),
                               .qps = 1,
                               .burst = 1});
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(5));  // Token available; backoff wins.
  ExpectNear(limiter.When("b"), absl::Seconds(1));      // Bucket empty; bucket wins.
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(limiter.When("a"), absl::Milliseconds(10));
}

}  // namespace
}  // namespace kaito::server
