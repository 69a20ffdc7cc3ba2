#include "agent/work_serializer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace kaito::agent {
namespace {

TEST(WorkSerializerTest, RunsInOrderWithoutRecursion) {
  WorkSerializer strand;
  std::vector<int> order;
  strand.Run([&] {
    order.push_back(1);
    strand.Run([&] { order.push_back(3); });  // Queued, runs after this closure.
    order.push_back(2);
  });
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST(WorkSerializerTest, NeverRunsTwoClosuresAtOnce) {
  WorkSerializer strand;
  std::atomic<int> inside{0};
  std::atomic<bool> overlap{false};
  int counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        strand.Run([&] {
          if (inside.fetch_add(1) != 0) overlap = true;
          ++counter;
          inside.fetch_sub(1);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(overlap);
  EXPECT_EQ(counter, 8000);
}

TEST(WorkSerializerTest, CloseWaitsForTheRunningClosureAndDropsTheRest) {
  auto strand = std::make_shared<WorkSerializer>();
  absl::Notification started, release;
  std::atomic<int> ran{0};
  std::thread runner([&] {
    strand->Run([&] {
      started.Notify();
      release.WaitForNotification();
      ran++;
    });
  });
  started.WaitForNotification();
  strand->Run([&] { ran += 10; });  // Queued behind the running one.
  std::atomic<bool> closed{false};
  std::thread closer([&] {
    strand->Close();
    closed = true;
  });
  // Close cannot return while the closure runs; this wait is for the thread to block.
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(closed);
  release.Notify();
  closer.join();
  runner.join();
  EXPECT_TRUE(closed);
  EXPECT_EQ(ran, 1);
  strand->Run([&] { ran += 100; });
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(strand->closed());
}

TEST(WorkSerializerTest, CloseFromInsideAClosureDoesNotWait) {
  WorkSerializer strand;
  int ran = 0;
  strand.Run([&] {
    strand.Run([&] { ran += 10; });
    strand.Close();
    ++ran;
  });
  EXPECT_EQ(ran, 1);
}

}  // namespace
}  // namespace kaito::agent
