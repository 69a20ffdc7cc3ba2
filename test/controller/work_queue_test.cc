#include "server/controller/work_queue.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/clock.h"

namespace kaito::server {
namespace {

// `Get` from another thread, bounded: if no key comes within `timeout` the queue is shut
// down, so a broken queue fails the test instead of hanging it.
std::optional<std::string> GetWithin(WorkQueue& queue, absl::Duration timeout) {
  std::optional<std::string> key;
  absl::Notification got;
  std::thread getter([&] {
    key = queue.Get();
    got.Notify();
  });
  if (!got.WaitForNotificationWithTimeout(timeout)) queue.ShutDown();
  getter.join();
  return key;
}

// `Get` of a key that must already be queued. Never blocks, so that a broken queue fails
// the test instead of hanging it.
std::optional<std::string> GetQueued(WorkQueue& queue) {
  if (queue.Len() == 0) return std::nullopt;
  return queue.Get();
}

TEST(WorkQueueTest, AddDeduplicatesAQueuedKey) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.Add("a");
  queue.Add("b");
  queue.Add("a");
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_EQ(GetQueued(queue), "a");
  EXPECT_EQ(GetQueued(queue), "b");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, KeyAddedWhileProcessingComesBackOnlyAfterDoneAndOnlyOnce) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  ASSERT_EQ(GetQueued(queue), "a");

  queue.Add("a");
  queue.Add("a");
  queue.Add("a");
  // Not handed to a second worker while the first holds it.
  EXPECT_EQ(queue.Len(), 0);
  queue.Add("b");
  EXPECT_EQ(GetQueued(queue), "b");
  queue.Done("b");

  queue.Done("a");
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(GetQueued(queue), "a");
  queue.Done("a");
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, DoneWithoutAnotherAddDoesNotRequeue) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  ASSERT_EQ(GetQueued(queue), "a");
  queue.Done("a");
  EXPECT_EQ(queue.Len(), 0);
  queue.Done("a");  // A second Done is ignored.
  EXPECT_EQ(queue.Len(), 0);
}

TEST(WorkQueueTest, GetBlocksUntilAKeyIsAdded) {
  FakeClock clock;
  WorkQueue queue(&clock);
  std::optional<std::string> key;
  absl::Notification got;
  std::thread getter([&] {
    key = queue.Get();
    got.Notify();
  });
  EXPECT_FALSE(got.HasBeenNotified());
  queue.Add("a");
  EXPECT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(10)));
  if (!got.HasBeenNotified()) queue.ShutDown();
  getter.join();
  EXPECT_EQ(key, "a");
}

TEST(WorkQueueTest, ShutDownWakesEveryGetter) {
  FakeClock clock;
  WorkQueue queue(&clock);
  std::vector<std::optional<std::string>> keys(3, "unset");
  std::vector<std::thread> getters;
  for (int i = 0; i < 3; ++i) getters.emplace_back([&, i] { keys[i] = queue.Get(); });
  queue.ShutDown();
  for (std::thread& getter : getters) getter.join();
  for (const auto& key : keys) EXPECT_EQ(key, std::nullopt);
  EXPECT_TRUE(queue.ShuttingDown());
}

TEST(WorkQueueTest, ShutDownAbandonsQueuedKeysDropsAddsAndCancelsTimers) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.Add("b");
  queue.AddAfter("c", absl::Seconds(1));
  queue.AddRateLimited("d");
  ASSERT_EQ(clock.pending_timers(), 2u);

  queue.ShutDown();
  queue.ShutDown();  // Idempotent.
  EXPECT_EQ(clock.pending_timers(), 0u);
  EXPECT_EQ(queue.Get(), std::nullopt);  // Even though keys are queued.
  queue.Add("e");
  queue.AddAfter("f", absl::Seconds(1));
  queue.AddRateLimited("g");
  EXPECT_EQ(clock.pending_timers(), 0u);
  EXPECT_EQ(queue.NumRequeues("g"), 0);
  clock.Advance(absl::Seconds(10));
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_EQ(queue.NumWaiting(), 0);
}

TEST(WorkQueueTest, AddAfterQueuesExactlyWhenTheDelayHasPassed) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("a", absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(queue.NumWaiting(), 1);
  clock.Advance(absl::Milliseconds(999));
  EXPECT_EQ(queue.Len(), 0);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(queue.Len(), 1);
  EXPECT_EQ(queue.NumWaiting(), 0);
  EXPECT_EQ(GetQueued(queue), "a");
}

TEST(WorkQueueTest, AddAfterWithoutDelayAddsAtOnce) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("a", absl::ZeroDuration());
  queue.AddAfter("b", -absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 2);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(WorkQueueTest, EarlierAddAfterWinsOverALaterOne) {
  FakeClock clock;
  WorkQueue queue(&clock);
  // Later then earlier: the later timer is cancelled.
  queue.AddAfter("a", absl::Seconds(10));
  queue.AddAfter("a", absl::Seconds(2));
  EXPECT_EQ(clock.pending_timers(), 1u);
  EXPECT_EQ(clock.next_timer_in(), absl::Seconds(2));
  // Earlier then later: the later one is not armed.
  queue.AddAfter("b", absl::Seconds(3));
  queue.AddAfter("b", absl::Seconds(30));
  EXPECT_EQ(clock.pending_timers(), 2u);

  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(queue.Len(), 1);
  ASSERT_EQ(GetQueued(queue), "a");
  queue.Done("a");
  clock.Advance(absl::Seconds(1));
  ASSERT_EQ(GetQueued(queue), "b");
  queue.Done("b");
  // Neither the cancelled timer of "a" nor the later add of "b" brings a key back.
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(queue.Len(), 0);
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(WorkQueueTest, AddAfterOfAQueuedKeyIsDeduplicated) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  queue.AddAfter("a", absl::Seconds(1));
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(queue.Len(), 1);
}

TEST(WorkQueueTest, AddRateLimitedBacksOffPerKeyUntilForgotten) {
  FakeClock clock;
  WorkQueue queue(&clock);
  for (absl::Duration expected :
       {absl::Milliseconds(5), absl::Milliseconds(10), absl::Milliseconds(20)}) {
    queue.AddRateLimited("a");
    EXPECT_EQ(clock.next_timer_in(), expected);
    clock.Advance(expected - absl::Nanoseconds(1));
    EXPECT_EQ(queue.Len(), 0);
    clock.Advance(absl::Nanoseconds(1));
    ASSERT_EQ(GetQueued(queue), "a");
    queue.Done("a");
  }
  EXPECT_EQ(queue.NumRequeues("a"), 3);
  queue.Forget("a");
  EXPECT_EQ(queue.NumRequeues("a"), 0);
  queue.AddRateLimited("a");
  EXPECT_EQ(clock.next_timer_in(), absl::Milliseconds(5));
}

TEST(WorkQueueTest, TimerFiringWhileProcessingRequeuesAfterDone) {
  FakeClock clock;
  WorkQueue queue(&clock);
  queue.Add("a");
  ASSERT_EQ(GetQueued(queue), "a");
  queue.AddRateLimited("a");  // As a worker does on failure, before `Done`.
  clock.Advance(absl::Milliseconds(5));
  EXPECT_EQ(queue.Len(), 0);
  queue.Done("a");
  EXPECT_EQ(queue.Len(), 1);
}

TEST(WorkQueueTest, AddAfterWithARealClockDelivers) {
  RealClock clock;
  WorkQueue queue(&clock);
  queue.AddAfter("a", absl::Milliseconds(1));
  EXPECT_EQ(GetWithin(queue, absl::Seconds(10)), "a");
}

TEST(WorkQueueTest, DestroyingTheQueueCancelsItsTimers) {
  FakeClock clock;
  {
    WorkQueue queue(&clock);
    queue.AddAfter("a", absl::Seconds(1));
    ASSERT_EQ(clock.pending_timers(), 1u);
  }
  EXPECT_EQ(clock.pending_timers(), 0u);
  clock.Advance(absl::Seconds(2));  // Nothing runs against the destroyed queue.
}

TEST(WorkQueueTest, ReportsDepthAddsRetriesAndDurations) {
  FakeClock clock;
  prometheus::Gauge depth;
  prometheus::Counter adds;
  prometheus::Counter retries;
  prometheus::Histogram queue_duration({1, 10});
  prometheus::Histogram work_duration({1, 10});
  WorkQueue queue(&clock, {},
                  {.depth = &depth,
                   .adds = &adds,
                   .retries = &retries,
                   .queue_duration = &queue_duration,
                   .work_duration = &work_duration});
  queue.Add("a");
  queue.Add("a");
  queue.Add("b");
  EXPECT_EQ(depth.Value(), 2);
  EXPECT_EQ(adds.Value(), 2);  // De-duplicated adds are not counted.

  clock.Advance(absl::Seconds(3));
  ASSERT_EQ(GetQueued(queue), "a");
  EXPECT_EQ(depth.Value(), 1);
  clock.Advance(absl::Seconds(2));
  queue.Done("a");
  EXPECT_EQ(queue_duration.Collect().histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(queue_duration.Collect().histogram.sample_sum, 3);
  EXPECT_DOUBLE_EQ(work_duration.Collect().histogram.sample_sum, 2);

  queue.AddRateLimited("a");
  queue.AddAfter("c", absl::Seconds(1));
  EXPECT_EQ(retries.Value(), 2);
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(adds.Value(), 4);
  EXPECT_EQ(depth.Value(), 3);
  // Time in the queue counts from the add the timer made, not from `AddAfter`.
  ASSERT_EQ(GetQueued(queue), "b");
  ASSERT_EQ(GetQueued(queue), "a");
  EXPECT_NEAR(queue_duration.Collect().histogram.sample_sum, 3 + 6 + 0.995, 1e-9);
}

}  // namespace
}  // namespace kaito::server
