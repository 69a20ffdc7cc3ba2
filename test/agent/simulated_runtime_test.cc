// The simulation's timing and faults, on a fake clock.
#include "agent/runtime/simulated_runtime.h"

#include <gtest/gtest.h>

#include <optional>

#include "agent/supervisor/container_labels.h"

namespace kaito::agent {
namespace {

class SimulatedRuntimeTest : public ::testing::Test {
 protected:
  SimulatedRuntimeTest() {
    options_.pull_delay = absl::Seconds(2);
    options_.start_delay = absl::Seconds(1);
    options_.ready_delay = absl::Seconds(5);
    options_.job_duration = absl::Seconds(30);
    runtime_ = std::make_unique<SimulatedRuntime>(&clock_, options_);
    runtime_->AddListener([this](const ContainerInfo& info) { events_.push_back(info); });
  }

  // Pulls and creates a container with `labels`; returns its id.
  std::string Create(const std::string& image, std::map<std::string, std::string> labels = {}) {
    std::optional<absl::Status> pulled;
    runtime_->PullImage(image, [&](absl::Status s) { pulled = s; });
    clock_.Advance(options_.pull_delay);
    EXPECT_TRUE(pulled && pulled->ok());
    ContainerConfig config;
    config.name = "c" + std::to_string(++created_);
    config.image = image;
    config.labels = std::move(labels);
    std::optional<absl::StatusOr<std::string>> id;
    runtime_->CreateContainer(config, [&](absl::StatusOr<std::string> r) { id = std::move(r); });
    clock_.Advance(absl::ZeroDuration());
    EXPECT_TRUE(id && id->ok());
    return id && id->ok() ? **id : "";
  }

  ContainerInfo Inspect(const std::string& id) {
    std::optional<absl::StatusOr<ContainerInfo>> info;
    runtime_->InspectContainer(id, [&](absl::StatusOr<ContainerInfo> r) { info = std::move(r); });
    clock_.Advance(absl::ZeroDuration());
    EXPECT_TRUE(info && info->ok());
    return info && info->ok() ? **info : ContainerInfo{};
  }

  FakeClock clock_;
  SimulatedRuntime::Options options_;
  std::unique_ptr<SimulatedRuntime> runtime_;
  std::vector<ContainerInfo> events_;
  int created_ = 0;
};

TEST_F(SimulatedRuntimeTest, PullTakesThePullDelayOnceThenTheImageIsCached) {
  std::optional<absl::Status> first;
  runtime_->PullImage("vllm:1", [&](absl::Status s) { first = s; });
  EXPECT_FALSE(first);  // Never inline.
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_FALSE(first);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->ok());
  std::optional<absl::Status> second;
  runtime_->PullImage("vllm:1", [&](absl::Status s) { second = s; });
  EXPECT_FALSE(second);
  clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(second);
  EXPECT_EQ(runtime_->pulls(), 2);
}

TEST_F(SimulatedRuntimeTest, StartTakesTheStartDelayAndHealthFollowsTheReadyDelay) {
  const std::string id = Create("vllm:1");
  events_.clear();
  std::optional<absl::Status> started;
  runtime_->StartContainer(id, [&](absl::Status s) { started = s; });
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_FALSE(started);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(started && started->ok());
  ASSERT_EQ(events_.size(), 1u);
  EXPECT_EQ(events_[0].state, ContainerState::kRunning);
  EXPECT_EQ(events_[0].health, ContainerHealth::kStarting);
  clock_.Advance(absl::Milliseconds(4999));
  EXPECT_EQ(Inspect(id).health, ContainerHealth::kStarting);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(Inspect(id).health, ContainerHealth::kHealthy);
  ASSERT_EQ(events_.size(), 2u);
  EXPECT_EQ(events_[1].health, ContainerHealth::kHealthy);
  // A long-running container runs until stopped.
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(Inspect(id).state, ContainerState::kRunning);
}

TEST_F(SimulatedRuntimeTest, RunToCompletionContainersExitZeroAfterTheJobDuration) {
  const std::string job = Create("tuner:1", {{labels::kRestartPolicy, "Never"}});
  const std::string init = Create("dl:1", {{labels::kContainerKind, labels::kKindInit}});
  runtime_->StartContainer(job, [](absl::Status) {});
  runtime_->StartContainer(init, [](absl::Status) {});
  clock_.Advance(absl::Seconds(1) + absl::Seconds(30) - absl::Milliseconds(1));
  EXPECT_EQ(Inspect(job).state, ContainerState::kRunning);
  EXPECT_EQ(Inspect(job).health, ContainerHealth::kNone);
  clock_.Advance(absl::Milliseconds(1));
  for (const std::string& id : {job, init}) {
    const ContainerInfo info = Inspect(id);
    EXPECT_EQ(info.state, ContainerState::kExited);
    EXPECT_EQ(info.exit_code, 0);
    EXPECT_EQ(info.finished_at - info.started_at, absl::Seconds(30));
  }
  // Started again, it runs again.
  runtime_->StartContainer(job, [](absl::Status) {});
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Inspect(job).state, ContainerState::kRunning);
  EXPECT_EQ(runtime_->starts(), 3);
}

TEST_F(SimulatedRuntimeTest, StopExitsOnSigtermOrIsKilledAtTheGracePeriod) {
  const std::string id = Create("vllm:1");
  runtime_->StartContainer(id, [](absl::Status) {});
  clock_.Advance(absl::Seconds(1));
  std::optional<absl::Status> stopped;
  runtime_->StopContainer(id, absl::Seconds(30), [&](absl::Status s) { stopped = s; });
  clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(stopped && stopped->ok());
  EXPECT_EQ(Inspect(id).exit_code, 143);

  // A process that ignores SIGTERM for a minute is killed after the 2 s grace.
  options_.stop_delay = absl::Minutes(1);
  runtime_ = std::make_unique<SimulatedRuntime>(&clock_, options_);
  const std::string slow = Create("vllm:1");
  runtime_->StartContainer(slow, [](absl::Status) {});
  clock_.Advance(absl::Seconds(1));
  stopped.reset();
  runtime_->StopContainer(slow, absl::Seconds(2), [&](absl::Status s) { stopped = s; });
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_FALSE(stopped);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(stopped && stopped->ok());
  EXPECT_EQ(Inspect(slow).exit_code, 137);
}

TEST_F(SimulatedRuntimeTest, FaultsMatchTheImageOrTheWorkloadName) {
  runtime_->AddFault({"bad-image", SimulatedFault::Kind::kPullFailure});
  runtime_->AddFault({"crashy", SimulatedFault::Kind::kCrash, absl::Seconds(3), 42});
  runtime_->AddFault({"hungry", SimulatedFault::Kind::kOomKill, absl::Seconds(4), 137});
  runtime_->AddFault({"shy", SimulatedFault::Kind::kNeverReady});
  runtime_->AddFault({"nostart", SimulatedFault::Kind::kStartFailure});

  std::optional<absl::Status> pulled;
  runtime_->PullImage("registry/bad-image:1", [&](absl::Status s) { pulled = s; });
  clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(pulled);
  EXPECT_EQ(pulled->code(), absl::StatusCode::kNotFound);
  EXPECT_NE(pulled->message().find("not found"), absl::string_view::npos);

  const std::string crashy = Create("img:1", {{labels::kWorkloadName, "crashy-0"}});
  const std::string hungry = Create("hungry:1");
  const std::string shy = Create("img:1", {{labels::kWorkloadName, "shy-0"}});
  const std::string nostart = Create("img:1", {{labels::kWorkloadName, "nostart-0"}});
  std::optional<absl::Status> start_failed;
  for (const std::string& id : {crashy, hungry, shy}) {
    runtime_->StartContainer(id, [](absl::Status) {});
  }
  runtime_->StartContainer(nostart, [&](absl::Status s) { start_failed = s; });
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(start_failed);
  EXPECT_EQ(start_failed->code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Inspect(nostart).state, ContainerState::kExited);
  EXPECT_FALSE(Inspect(nostart).error.empty());

  clock_.Advance(absl::Seconds(3));  // 4 s: crashy exits.
  EXPECT_EQ(Inspect(crashy).state, ContainerState::kExited);
  EXPECT_EQ(Inspect(crashy).exit_code, 42);
  EXPECT_FALSE(Inspect(crashy).oom_killed);
  EXPECT_EQ(Inspect(hungry).state, ContainerState::kRunning);
  clock_.Advance(absl::Seconds(1));  // 5 s: hungry is OOM-killed.
  EXPECT_EQ(Inspect(hungry).state, ContainerState::kExited);
  EXPECT_TRUE(Inspect(hungry).oom_killed);
  EXPECT_EQ(Inspect(hungry).exit_code, 137);
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(Inspect(shy).state, ContainerState::kRunning);
  EXPECT_EQ(Inspect(shy).health, ContainerHealth::kStarting);

  // A crash fault applies again after a restart.
  runtime_->StartContainer(crashy, [](absl::Status) {});
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(Inspect(crashy).state, ContainerState::kRunning);
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(Inspect(crashy).exit_code, 42);

  runtime_->ClearFaults();
  pulled.reset();
  runtime_->PullImage("registry/bad-image:1", [&](absl::Status s) { pulled = s; });
  clock_.Advance(options_.pull_delay);
  ASSERT_TRUE(pulled);
  EXPECT_TRUE(pulled->ok());
}

TEST_F(SimulatedRuntimeTest, DestroyingItDropsPendingCallbacksAndTimers) {
  const std::string id = Create("vllm:1");
  bool called = false;
  runtime_->StartContainer(id, [&](absl::Status) { called = true; });
  EXPECT_GT(clock_.pending_timers(), 0u);
  runtime_.reset();
  EXPECT_EQ(clock_.pending_timers(), 0u);
  clock_.Advance(absl::Minutes(1));
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace kaito::agent
