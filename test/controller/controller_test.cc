#include "server/controller/controller.h"

#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "server/controller/reconciler.h"

namespace kaito::server {
namespace {

constexpr absl::Duration kWait = absl::Seconds(10);

// A `FakeClock` that lets a test wait, without polling, until the code under test has armed
// or cancelled a timer (which happens on a worker thread).
class ObservedClock : public FakeClock {
 public:
  TimerId RunAfter(absl::Duration delay, absl::AnyInvocable<void()> fn) override {
    const TimerId id = FakeClock::RunAfter(delay, std::move(fn));
    absl::MutexLock lock(&mu_);
    ++armed_;
    return id;
  }
  bool Cancel(TimerId id) override {
    const bool cancelled = FakeClock::Cancel(id);
    absl::MutexLock lock(&mu_);
    if (cancelled) ++cancelled_;
    return cancelled;
  }
  bool AwaitArmed(int n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return armed_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kWait);
  }
  bool AwaitCancelled(int n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return cancelled_ >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kWait);
  }

 private:
  absl::Mutex mu_;
  int armed_ ABSL_GUARDED_BY(mu_) = 0;
  int cancelled_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records every call; `behavior(key, call)` (call counts from 1 per key) decides the result,
// `Done` when unset. `behavior` runs outside the recorder's lock.
class RecordingReconciler : public Reconciler {
 public:
  using Behavior = std::function<absl::StatusOr<ReconcileResult>(const std::string&, int)>;
  explicit RecordingReconciler(Behavior behavior = nullptr) : behavior_(std::move(behavior)) {}

  absl::StatusOr<ReconcileResult> Reconcile(const std::string& key) override {
    int call;
    {
      absl::MutexLock lock(&mu_);
      call = ++calls_[key];
      order_.push_back(key);
    }
    return behavior_ ? behavior_(key, call) : ReconcileResult::Done();
  }

  int Calls(const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = calls_.find(key);
    return it == calls_.end() ? 0 : it->second;
  }
  std::vector<std::string> Order() {
    absl::MutexLock lock(&mu_);
    return order_;
  }
  // Waits until `key` has been reconciled at least `n` times.
  bool AwaitCalls(const std::string& key, int n) {
    absl::MutexLock lock(&mu_);
    auto done = [this, &key, n]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      auto it = calls_.find(key);
      return it != calls_.end() && it->second >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), kWait);
  }

 private:
  const Behavior behavior_;
  absl::Mutex mu_;
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
};

std::string Scrape(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

int Count(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

bool WaitForPaused(Controller& controller) {
  const absl::Time deadline = absl::Now() + kWait;
  while (!controller.paused()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

// Waits until the queue holds `n` keys (the rest taken by workers).
bool WaitForQueueLen(Controller& controller, int n) {
  const absl::Time deadline = absl::Now() + kWait;
  while (controller.queue().Len() != n) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

TEST(ControllerTest, ReconcilesAnEnqueuedKeyAndCountsSuccess) {
  FakeClock clock;
  prometheus::Registry registry;
  RecordingReconciler reconciler;
  Controller controller("x", &reconciler, &clock, {}, &registry);
  controller.Enqueue("a");  // Before `Start`: kept until the workers run.
  controller.Start();
  ASSERT_TRUE(reconciler.AwaitCalls("a", 1));
  controller.Stop();

  const std::string text = Scrape(registry);
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="success"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_workqueue_adds_total{name="x"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(kaito_workqueue_depth{name="x"} 0)"), std::string::npos) << text;
  EXPECT_NE(text.find(R"(kaito_workqueue_queue_duration_seconds_count{name="x"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_workqueue_work_duration_seconds_count{name="x"} 1)"),
            std::string::npos)
      << text;
}

TEST(ControllerTest, ErrorIsRetriedWithBackoffAndCounted) {
  ObservedClock clock;
  prometheus::Registry registry;
  // Fails three times, then succeeds.
  RecordingReconciler reconciler(
      [](const std::string&, int call) -> absl::StatusOr<ReconcileResult> {
        if (call <= 3) return absl::UnavailableError("cloud busy");
        return ReconcileResult::Done();
      });
  Controller controller("x", &reconciler, &clock, {.workers = 2}, &registry);
  controller.Enqueue("a");
  controller.Start();

  int armed = 0;
  for (absl::Duration backoff :
       {absl::Milliseconds(5), absl::Milliseconds(10), absl::Milliseconds(20)}) {
    // The retry is armed after the failed reconcile returned, so `calls` is settled.
    ASSERT_TRUE(clock.AwaitArmed(++armed));
    const int calls = reconciler.Calls("a");
    EXPECT_EQ(clock.next_timer_in(), backoff);
    // Not retried before its backoff: no timer falls due, so nothing can be queued.
    clock.Advance(backoff - absl::Nanoseconds(1));
    EXPECT_EQ(reconciler.Calls("a"), calls);
    clock.Advance(absl::Nanoseconds(1));
    ASSERT_TRUE(reconciler.AwaitCalls("a", calls + 1));
  }
  controller.Stop();  // Joins the workers, so the last result is counted.
  EXPECT_EQ(reconciler.Calls("a"), 4);
  EXPECT_EQ(controller.queue().NumRequeues("a"), 0);  // Forgotten on success.

  const std::string text = Scrape(registry);
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="error"} 3)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="success"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_errors_total{controller="x"} 3)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_workqueue_retries_total{name="x"} 3)"), std::string::npos) << text;
}

TEST(ControllerTest, OneErrorShowsInTheScrapedMetrics) {
  ObservedClock clock;
  prometheus::Registry registry;
  RecordingReconciler reconciler([](const std::string&, int) -> absl::StatusOr<ReconcileResult> {
    return absl::InternalError("broken");
  });
  Controller controller("x", &reconciler, &clock, {}, &registry);
  controller.Enqueue("a");
  controller.Start();
  ASSERT_TRUE(clock.AwaitArmed(1));  // The retry is armed after the result is counted.
  controller.Stop();

  const std::string text = Scrape(registry);
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="error"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_errors_total{controller="x"} 1)"), std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="success"} 0)"),
            std::string::npos)
      << text;
}

TEST(ControllerTest, RequeueAfterReconcilesAgainAfterTheDelay) {
  ObservedClock clock;
  prometheus::Registry registry;
  RecordingReconciler reconciler(
      [](const std::string&, int call) -> absl::StatusOr<ReconcileResult> {
        if (call == 1) return ReconcileResult::RequeueAfter(absl::Seconds(30));
        return ReconcileResult::Done();
      });
  Controller controller("x", &reconciler, &clock, {}, &registry);
  controller.Enqueue("a");
  controller.Start();
  ASSERT_TRUE(reconciler.AwaitCalls("a", 1));
  ASSERT_TRUE(clock.AwaitArmed(1));
  EXPECT_EQ(clock.next_timer_in(), absl::Seconds(30));
  EXPECT_EQ(controller.queue().NumRequeues("a"), 0);  // A requeue is not a failure.

  clock.Advance(absl::Seconds(29));
  EXPECT_EQ(reconciler.Calls("a"), 1);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(reconciler.AwaitCalls("a", 2));
  controller.Stop();
  EXPECT_EQ(reconciler.Calls("a"), 2);

  const std::string text = Scrape(registry);
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="requeue_after"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="x",result="success"} 1)"),
            std::string::npos)
      << text;
}

TEST(ControllerTest, EnqueueAfterReconcilesOnlyOnceTheDelayHasPassed) {
  FakeClock clock;
  RecordingReconciler reconciler;
  Controller controller("x", &reconciler, &clock, {}, nullptr);
  controller.Start();
  controller.EnqueueAfter("a", absl::Minutes(1));
  clock.Advance(absl::Seconds(59));
  EXPECT_EQ(reconciler.Calls("a"), 0);
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(reconciler.AwaitCalls("a", 1));
}

TEST(ControllerTest, KeyEnqueuedDuringItsReconcileIsReconciledOnceMore) {
  FakeClock clock;
  Controller* self = nullptr;
  RecordingReconciler reconciler(
      [&self](const std::string& key, int call) -> absl::StatusOr<ReconcileResult> {
        if (call == 1) {
          for (int i = 0; i < 5; ++i) self->Enqueue(key);  // Events arriving mid-reconcile.
        }
        return ReconcileResult::Done();
      });
  Controller controller("x", &reconciler, &clock, {.workers = 4}, nullptr);
  self = &controller;
  controller.Enqueue("a");
  controller.Start();
  ASSERT_TRUE(reconciler.AwaitCalls("a", 2));
  controller.Stop();
  EXPECT_EQ(reconciler.Calls("a"), 2);
}

// Many keys, many adds from several threads, four workers, a real clock and some
// requeues: no key is ever reconciled by two workers at once, and every key is reconciled
// after its last add.
TEST(ControllerTest, NeverReconcilesOneKeyOnTwoWorkersAtOnce) {
  constexpr int kKeys = 8;
  constexpr int kProducers = 3;
  constexpr int kAddsPerProducer = 20000;

  absl::Mutex mu;
  std::map<std::string, int> active;        // Workers inside Reconcile, per key.
  std::map<std::string, int> max_active;    // The most ever seen at once, per key.
  std::map<std::string, int> version;       // Bumped before every add.
  std::map<std::string, int> seen_version;  // The version a reconcile started from.

  std::atomic<int> reconciles{0};
  RecordingReconciler reconciler(
      [&](const std::string& key, int) -> absl::StatusOr<ReconcileResult> {
        {
          absl::MutexLock lock(&mu);
          const int now_active = ++active[key];
          max_active[key] = std::max(max_active[key], now_active);
          seen_version[key] = version[key];
          // Stay inside a while (or until a second worker joins in, which must never happen),
          // so that the adds meanwhile would hand the key to another worker if the queue let
          // them.
          auto overlapped = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return active[key] > 1; };
          mu.AwaitWithTimeout(absl::Condition(&overlapped), absl::Microseconds(200));
          --active[key];
        }
        const int n = ++reconciles;
        if (n % 11 == 0) return ReconcileResult::RequeueAfter(absl::Milliseconds(1));
        if (n % 13 == 0) return absl::UnavailableError("transient");
        return ReconcileResult::Done();
      });

  RealClock clock;
  // A tiny backoff so that error retries come back within the test.
  Controller controller("x", &reconciler, &clock,
                        {.workers = 4,
                         .rate_limiter = {.base_delay = absl::Microseconds(100),
                                          .max_delay = absl::Milliseconds(10),
                                          .qps = 0}},
                        nullptr);
  controller.Start();
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      std::mt19937 random(p);
      std::uniform_int_distribution<int> pick(0, kKeys - 1);
      for (int i = 0; i < kAddsPerProducer; ++i) {
        const std::string key = absl::StrCat("key-", pick(random));
        {
          absl::MutexLock lock(&mu);
          ++version[key];
        }
        controller.Enqueue(key);
      }
    });
  }
  for (std::thread& producer : producers) producer.join();

  {
    absl::MutexLock lock(&mu);
    auto caught_up = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
      for (const auto& [key, v] : version) {
        auto it = seen_version.find(key);
        if (it == seen_version.end() || it->second != v) return false;
      }
      return true;
    };
    EXPECT_TRUE(mu.AwaitWithTimeout(absl::Condition(&caught_up), absl::Seconds(30)))
        << "some key was not reconciled after its last add";
  }
  controller.Stop();

  absl::MutexLock lock(&mu);
  EXPECT_EQ(version.size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(max_active.size(), static_cast<size_t>(kKeys));
  for (const auto& [key, most] : max_active) EXPECT_EQ(most, 1) << key;
}

TEST(ControllerTest, SlowReconcileDoesNotBlockOtherKeys) {
  FakeClock clock;
  absl::Notification entered_slow;
  absl::Notification release_slow;
  RecordingReconciler reconciler(
      [&](const std::string& key, int) -> absl::StatusOr<ReconcileResult> {
        if (key == "slow") {
          entered_slow.Notify();
          release_slow.WaitForNotificationWithTimeout(kWait);
        }
        return ReconcileResult::Done();
      });
  Controller controller("x", &reconciler, &clock, {.workers = 2}, nullptr);
  controller.Enqueue("slow");
  controller.Start();
  ASSERT_TRUE(entered_slow.WaitForNotificationWithTimeout(kWait));
  for (const char* key : {"a", "b", "c"}) controller.Enqueue(key);
  for (const char* key : {"a", "b", "c"}) EXPECT_TRUE(reconciler.AwaitCalls(key, 1)) << key;
  EXPECT_FALSE(release_slow.HasBeenNotified());
  release_slow.Notify();
  controller.Stop();
}

TEST(ControllerTest, StopJoinsPromptlyWithKeysStillQueued) {
  ObservedClock clock;
  // The reconcile of "block" holds the only worker until `Stop` has shut the queue down,
  // which it observes as the cancellation of the one pending timer.
  RecordingReconciler reconciler(
      [&clock](const std::string& key, int) -> absl::StatusOr<ReconcileResult> {
        if (key == "block") clock.AwaitCancelled(1);
        return ReconcileResult::Done();
      });
  Controller controller("x", &reconciler, &clock, {.workers = 1}, nullptr);
  controller.EnqueueAfter("later", absl::Hours(1));
  controller.Enqueue("block");
  for (int i = 0; i < 100; ++i) controller.Enqueue(absl::StrCat("key-", i));
  controller.Start();
  ASSERT_TRUE(reconciler.AwaitCalls("block", 1));

  const absl::Time start = absl::Now();
  controller.Stop();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(reconciler.Order(), std::vector<std::string>{"block"});
  EXPECT_EQ(controller.queue().Len(), 100);  // Abandoned, not drained.
  controller.Stop();                         // Idempotent.
  controller.Start();                        // A stopped controller stays stopped.
  controller.Enqueue("again");
  EXPECT_EQ(reconciler.Calls("again"), 0);
}

// Leadership lost: `Pause` waits for the reconcile in progress, nothing new starts while
// paused (keys enqueued meanwhile wait), and `Resume` goes on with them.
TEST(ControllerTest, PauseWaitsForTheReconcileInProgressAndHoldsNewKeys) {
  FakeClock clock;
  absl::Notification entered;
  absl::Notification release;
  std::atomic<bool> pause_returned{false};
  std::atomic<bool> finished_before_pause_returned{false};
  RecordingReconciler reconciler(
      [&](const std::string& key, int) -> absl::StatusOr<ReconcileResult> {
        if (key == "running") {
          entered.Notify();
          release.WaitForNotificationWithTimeout(kWait);
          finished_before_pause_returned = !pause_returned.load();
        }
        return ReconcileResult::Done();
      });
  Controller controller("x", &reconciler, &clock, {.workers = 2}, nullptr);
  controller.Enqueue("running");
  controller.Start();
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kWait));
  std::thread pauser([&] {
    controller.Pause();
    pause_returned = true;
  });
  // Pause is blocked on "running"; let it finish.
  ASSERT_TRUE(WaitForPaused(controller));
  EXPECT_FALSE(pause_returned.load());
  release.Notify();
  pauser.join();
  EXPECT_TRUE(finished_before_pause_returned.load());
  for (const char* key : {"a", "b", "c"}) controller.Enqueue(key);
  // Both workers take a key and wait at the gate; none is reconciled.
  ASSERT_TRUE(WaitForQueueLen(controller, 1));
  EXPECT_EQ(reconciler.Calls("a") + reconciler.Calls("b") + reconciler.Calls("c"), 0);
  controller.Resume();
  for (const char* key : {"a", "b", "c"}) EXPECT_TRUE(reconciler.AwaitCalls(key, 1)) << key;
  // Stop wakes workers held at a paused gate.
  controller.Pause();
  controller.Enqueue("d");
  controller.Stop();
  EXPECT_EQ(reconciler.Calls("d"), 0);
}

TEST(ControllerTest, AroundReconcileWrapsEachReconcileOnItsWorkerThread) {
  FakeClock clock;
  thread_local int in_scope = 0;
  std::atomic<int> wrapped{0};
  std::atomic<int> seen_in_scope{0};
  RecordingReconciler reconciler([&](const std::string&, int) -> absl::StatusOr<ReconcileResult> {
    if (in_scope == 1) ++seen_in_scope;
    return ReconcileResult::Done();
  });
  ControllerOptions options;
  options.workers = 2;
  options.around_reconcile = [&](const std::function<void()>& reconcile) {
    ++wrapped;
    ++in_scope;
    reconcile();
    --in_scope;
  };
  Controller controller("x", &reconciler, &clock, options, nullptr);
  for (int i = 0; i < 20; ++i) controller.Enqueue(absl::StrCat("k", i));
  controller.Start();
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(reconciler.AwaitCalls(absl::StrCat("k", i), 1));
  controller.Stop();
  EXPECT_EQ(wrapped.load(), 20);
  EXPECT_EQ(seen_in_scope.load(), 20);
}

TEST(ControllerTest, ControllersOnOneRegistryShareTheFamilies) {
  FakeClock clock;
  // `Throw` makes a second registration of any family an exception.
  prometheus::Registry registry(prometheus::Registry::InsertBehavior::Throw);
  RecordingReconciler reconciler_a;
  RecordingReconciler reconciler_b;
  Controller a("a", &reconciler_a, &clock, {.workers = 1}, &registry);
  Controller b("b", &reconciler_b, &clock, {.workers = 1}, &registry);
  a.Enqueue("k");
  b.Enqueue("k");
  a.Start();
  b.Start();
  ASSERT_TRUE(reconciler_a.AwaitCalls("k", 1));
  ASSERT_TRUE(reconciler_b.AwaitCalls("k", 1));
  a.Stop();
  b.Stop();

  const std::string text = Scrape(registry);
  EXPECT_EQ(Count(text, "# TYPE kaito_reconcile_total counter"), 1) << text;
  EXPECT_EQ(Count(text, "# TYPE kaito_workqueue_depth gauge"), 1) << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="a",result="success"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(kaito_reconcile_total{controller="b",result="success"} 1)"),
            std::string::npos)
      << text;
}

TEST(ControllerTest, RegistryCanBeReusedAfterItsControllersAreGone) {
  FakeClock clock;
  prometheus::Registry registry;
  RecordingReconciler reconciler;
  {
    Controller first("x", &reconciler, &clock, {.workers = 1}, &registry);
    first.Enqueue("k");
    first.Start();
    ASSERT_TRUE(reconciler.AwaitCalls("k", 1));
  }
  Controller second("x", &reconciler, &clock, {.workers = 1}, &registry);
  second.Enqueue("k");
  second.Start();
  ASSERT_TRUE(reconciler.AwaitCalls("k", 2));
  second.Stop();
  EXPECT_NE(Scrape(registry).find(R"(kaito_reconcile_total{controller="x",result="success"} 2)"),
            std::string::npos);
}

TEST(ControllerTest, DestructorStopsARunningController) {
  FakeClock clock;
  RecordingReconciler reconciler;
  {
    Controller controller("x", &reconciler, &clock, {}, nullptr);
    controller.Start();
    controller.Enqueue("a");
    ASSERT_TRUE(reconciler.AwaitCalls("a", 1));
  }
  SUCCEED();
}

}  // namespace
}  // namespace kaito::server
