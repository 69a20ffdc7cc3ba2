// The supervisor against the simulated runtime, on a fake clock: every step is driven by
// advancing the clock on the test thread, so there is no waiting and no other thread.
#include "agent/supervisor/workload_supervisor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "agent/runtime/simulated_runtime.h"
#include "agent/supervisor/container_labels.h"
#include "agent_test_util.h"

namespace kaito::agent {
namespace {

using testing::InferenceWorkload;
using testing::Phases;
using testing::TuningWorkload;

SimulatedRuntime::Options Timing() {
  SimulatedRuntime::Options o;
  o.pull_delay = absl::Milliseconds(500);
  o.start_delay = absl::Milliseconds(500);
  o.ready_delay = absl::Seconds(1);
  o.job_duration = absl::Seconds(3);
  return o;
}

class SupervisorTest : public ::testing::Test {
 protected:
  explicit SupervisorTest(SimulatedRuntime::Options timing = Timing())
      : runtime_(std::make_unique<SimulatedRuntime>(&clock_, std::move(timing))) {
    options_.node_name = "node-1";
    options_.node_address = "10.0.0.5";
    options_.resync_interval = absl::Seconds(30);
  }

  void SetUp() override { Restart(); }

  // A fresh supervisor on the same runtime (an agent restart).
  void Restart() {
    if (supervisor_) supervisor_->Shutdown();
    supervisor_.reset();
    strand_ = std::make_shared<WorkSerializer>();
    supervisor_ = std::make_unique<WorkloadSupervisor>(
        options_, &clock_, runtime_.get(), strand_,
        [this](const v1::WorkloadReport& r) { reports_.push_back(r); });
  }

  // Replaces the runtime (and so the supervisor) before anything ran.
  void UseRuntime(SimulatedRuntime::Options timing) {
    supervisor_.reset();
    runtime_ = std::make_unique<SimulatedRuntime>(&clock_, std::move(timing));
    Restart();
  }

  bool Apply(int64_t generation, const std::vector<v1::Workload>& workloads) {
    bool applied = false;
    strand_->Run([&] { applied = supervisor_->Apply(generation, workloads); });
    return applied;
  }

  v1::WorkloadStatus Status(const std::string& name) {
    v1::WorkloadStatus status;
    strand_->Run([&] {
      if (const auto* s = supervisor_->Find("default", name)) status = *s;
    });
    return status;
  }

  std::vector<v1::WorkloadReport> ReportsOf(const std::string& name) {
    std::vector<v1::WorkloadReport> out;
    for (const auto& r : reports_) {
      if (r.name() == name) out.push_back(r);
    }
    return out;
  }

  // Advances in steps until `condition` holds or `limit` of fake time has passed.
  bool AdvanceUntil(const std::function<bool()>& condition,
                    absl::Duration limit = absl::Minutes(10),
                    absl::Duration step = absl::Milliseconds(100)) {
    for (absl::Duration t; t <= limit; t += step) {
      if (condition()) return true;
      clock_.Advance(step);
    }
    return condition();
  }

  std::vector<ContainerInfo> Containers() { return runtime_->Containers(); }

  FakeClock clock_;
  WorkloadSupervisorOptions options_;
  std::unique_ptr<SimulatedRuntime> runtime_;
  std::shared_ptr<WorkSerializer> strand_;
  std::unique_ptr<WorkloadSupervisor> supervisor_;
  std::vector<v1::WorkloadReport> reports_;
};

TEST_F(SupervisorTest, InferenceWorkloadReachesReadyWithItsEndpoint) {
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 3, "vllm:1", 5000)}));
  EXPECT_EQ(Status("llama-0").phase(), "Pulling");
  clock_.Advance(absl::Milliseconds(500));  // Pulled; created; start begins.
  EXPECT_EQ(Status("llama-0").phase(), "Starting");
  clock_.Advance(absl::Milliseconds(500));  // Started; not healthy yet.
  EXPECT_EQ(Status("llama-0").phase(), "Running");
  EXPECT_EQ(Status("llama-0").endpoint(), "");
  clock_.Advance(absl::Milliseconds(999));
  EXPECT_EQ(Status("llama-0").phase(), "Running");
  clock_.Advance(absl::Milliseconds(1));
  const v1::WorkloadStatus ready = Status("llama-0");
  EXPECT_EQ(ready.phase(), "Ready");
  EXPECT_EQ(ready.endpoint(), "10.0.0.5:5000");
  EXPECT_EQ(ready.observed_generation(), 3);
  EXPECT_EQ(ready.restarts(), 0);
  EXPECT_TRUE(ready.has_start_time());
  EXPECT_EQ(Phases(ReportsOf("llama-0")),
            (std::vector<std::string>{"Pending", "Pulling", "Starting", "Running", "Ready"}));
  EXPECT_EQ(reports_.back().uid(), "uid-1");
  EXPECT_EQ(reports_.back().namespace_(), "default");

  // Labelled for adoption.
  auto containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  const auto& labels = containers[0].labels;
  EXPECT_EQ(labels.at(labels::kManagedBy), labels::kManagedByValue);
  EXPECT_EQ(labels.at(labels::kNode), "node-1");
  EXPECT_EQ(labels.at(labels::kWorkloadNamespace), "default");
  EXPECT_EQ(labels.at(labels::kWorkloadName), "llama-0");
  EXPECT_EQ(labels.at(labels::kWorkloadUid), "uid-1");
  EXPECT_EQ(labels.at(labels::kWorkloadGeneration), "3");
  EXPECT_EQ(containers[0].state, ContainerState::kRunning);

  // Nothing more is reported while nothing changes.
  const size_t count = reports_.size();
  clock_.Advance(absl::Minutes(5));
  EXPECT_EQ(reports_.size(), count);
}

TEST_F(SupervisorTest, TuningWorkloadRunsInitContainersThenSucceeds) {
  ASSERT_TRUE(Apply(1, {TuningWorkload("tune-0", "uid-t", 1)}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("tune-0").phase() == "Succeeded"; }));
  const v1::WorkloadStatus done = Status("tune-0");
  EXPECT_EQ(done.exit_code(), 0);
  EXPECT_TRUE(done.has_finish_time());
  EXPECT_EQ(done.endpoint(), "");
  EXPECT_EQ(Phases(ReportsOf("tune-0")),
            (std::vector<std::string>{"Pending", "Pulling", "Starting", "Running", "Succeeded"}));
  // The init container ran to completion before the main container started.
  auto containers = Containers();
  ASSERT_EQ(containers.size(), 2u);
  const ContainerInfo* init = nullptr;
  const ContainerInfo* main = nullptr;
  for (const auto& c : containers) {
    (c.labels.at(labels::kContainerKind) == labels::kKindInit ? init : main) = &c;
  }
  ASSERT_NE(init, nullptr);
  ASSERT_NE(main, nullptr);
  EXPECT_EQ(init->state, ContainerState::kExited);
  EXPECT_EQ(main->state, ContainerState::kExited);
  EXPECT_LE(init->finished_at, main->started_at);
  // Pull 0.5 s; init start 0.5 s + run 3 s; main start 0.5 s + run 3 s.
  EXPECT_EQ(main->finished_at - init->created_at, absl::Seconds(7));
}

TEST_F(SupervisorTest, CrashingInferenceRestartsWithGrowingBackoffThenFails) {
  runtime_->AddFault({"crashy", SimulatedFault::Kind::kCrash, absl::Seconds(2), 3});
  ASSERT_TRUE(Apply(1, {InferenceWorkload("crashy-0", "uid-c", 1)}));
  // Record when each run starts, jumping from timer to timer.
  std::vector<absl::Duration> starts;
  int seen = 0;
  for (int i = 0; i < 10000 && Status("crashy-0").phase() != "Failed"; ++i) {
    clock_.Advance(clock_.next_timer_in());
    if (runtime_->starts() != seen) {
      seen = runtime_->starts();
      starts.push_back(clock_.Monotonic());
    }
  }
  const v1::WorkloadStatus failed = Status("crashy-0");
  EXPECT_EQ(failed.phase(), "Failed");
  EXPECT_EQ(failed.reason(), "ContainerCrashLoopBackOff");
  EXPECT_EQ(failed.restarts(), 5);
  EXPECT_EQ(failed.exit_code(), 3);
  EXPECT_NE(failed.message().find("exited with code 3"), std::string::npos) << failed.message();
  // One first run and five restarts; between two starts: 2 s of running, the backoff (10 s
  // doubling), 0.5 s of starting.
  ASSERT_EQ(starts.size(), 6u);
  const absl::Duration backoff[] = {absl::Seconds(10), absl::Seconds(20), absl::Seconds(40),
                                    absl::Seconds(80), absl::Seconds(160)};
  for (size_t i = 1; i < starts.size(); ++i) {
    EXPECT_EQ(starts[i] - starts[i - 1],
              absl::Seconds(2) + backoff[i - 1] + absl::Milliseconds(500))
        << "restart " << i;
  }
  // While it backed off it said so.
  bool reported_backoff = false;
  for (const auto& r : ReportsOf("crashy-0")) {
    reported_backoff = reported_backoff || (r.status().phase() == "Starting" &&
                                            r.status().reason() == "ContainerCrashLoopBackOff");
  }
  EXPECT_TRUE(reported_backoff);
  // No more restarts after that.
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(runtime_->starts(), 6);
}

TEST_F(SupervisorTest, BackoffIsCappedAtFiveMinutes) {
  options_.max_restarts = 8;
  Restart();
  runtime_->AddFault({"crashy", SimulatedFault::Kind::kCrash, absl::ZeroDuration(), 1});
  ASSERT_TRUE(Apply(1, {InferenceWorkload("crashy-0", "uid-c", 1)}));
  std::vector<absl::Duration> starts;
  int seen = 0;
  for (int i = 0; i < 10000 && Status("crashy-0").phase() != "Failed"; ++i) {
    clock_.Advance(clock_.next_timer_in());
    if (runtime_->starts() != seen) {
      seen = runtime_->starts();
      starts.push_back(clock_.Monotonic());
    }
  }
  ASSERT_EQ(starts.size(), 9u);
  // 10, 20, 40, 80, 160, then 300 (not 320), 300, 300.
  EXPECT_EQ(starts[6] - starts[5], absl::Minutes(5) + absl::Milliseconds(500));
  EXPECT_EQ(starts[8] - starts[7], absl::Minutes(5) + absl::Milliseconds(500));
}

TEST_F(SupervisorTest, PullFailureIsImagePullError) {
  runtime_->AddFault({"missing", SimulatedFault::Kind::kPullFailure});
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 1, "registry/missing:1")}));
  clock_.Advance(absl::Seconds(1));
  const v1::WorkloadStatus s = Status("llama-0");
  EXPECT_EQ(s.phase(), "Failed");
  EXPECT_EQ(s.reason(), "ImagePullError");
  EXPECT_NE(s.message().find("registry/missing:1"), std::string::npos) << s.message();
  EXPECT_TRUE(Containers().empty());
}

TEST_F(SupervisorTest, StartFailureIsContainerStartError) {
  runtime_->AddFault({"broken", SimulatedFault::Kind::kStartFailure});
  ASSERT_TRUE(Apply(1, {InferenceWorkload("broken-0", "uid-1", 1)}));
  clock_.Advance(absl::Seconds(2));
  const v1::WorkloadStatus s = Status("broken-0");
  EXPECT_EQ(s.phase(), "Failed");
  EXPECT_EQ(s.reason(), "ContainerStartError");
  EXPECT_NE(s.message().find("executable file not found"), std::string::npos) << s.message();
}

TEST_F(SupervisorTest, OomKilledTuningJobIsContainerOOMKilled) {
  runtime_->AddFault({"tuner", SimulatedFault::Kind::kOomKill, absl::Seconds(1), 137});
  ASSERT_TRUE(Apply(1, {TuningWorkload("tune-0", "uid-t", 1, "tuner:1")}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("tune-0").phase() == "Failed"; }));
  const v1::WorkloadStatus s = Status("tune-0");
  EXPECT_EQ(s.reason(), "ContainerOOMKilled");
  EXPECT_EQ(s.exit_code(), 137);
  EXPECT_NE(s.message().find("OOM"), std::string::npos) << s.message();
}

TEST_F(SupervisorTest, OomKilledInferenceSaysSoWhileItRestarts) {
  runtime_->AddFault({"vllm", SimulatedFault::Kind::kOomKill, absl::Seconds(5), 137});
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 1, "vllm:1")}));
  clock_.Advance(absl::Seconds(7));  // Ready at 2 s, killed at 6 s.
  const v1::WorkloadStatus s = Status("llama-0");
  EXPECT_EQ(s.phase(), "Starting");
  EXPECT_EQ(s.reason(), "ContainerOOMKilled");
  EXPECT_EQ(s.endpoint(), "");
  EXPECT_EQ(Phases(ReportsOf("llama-0")).back(), "Starting");
}

TEST_F(SupervisorTest, FailingJobIsJobFailed) {
  runtime_->AddFault({"tuner", SimulatedFault::Kind::kCrash, absl::Seconds(1), 2});
  ASSERT_TRUE(Apply(1, {TuningWorkload("tune-0", "uid-t", 1, "tuner:1")}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("tune-0").phase() == "Failed"; }));
  EXPECT_EQ(Status("tune-0").reason(), "JobFailed");
  EXPECT_EQ(Status("tune-0").exit_code(), 2);
  EXPECT_EQ(runtime_->starts(), 2);  // The init container and one run: never restarted.
  // The last lines the container wrote follow in the message, once the runtime has them.
  ASSERT_TRUE(AdvanceUntil([&] {
    return Status("tune-0").message().find("; last output: ") != std::string::npos;
  }));
  EXPECT_THAT(Status("tune-0").message(),
              ::testing::HasSubstr("exited with code 2; last output: simulated tuner:1: exiting "
                                   "with code 2"));
}

TEST_F(SupervisorTest, RemovalStopsWithTheGracePeriodAndRemovesTheContainers) {
  SimulatedRuntime::Options timing = Timing();
  timing.stop_delay = absl::Minutes(1);  // Ignores SIGTERM: killed at the grace period.
  UseRuntime(timing);
  v1::Workload w = InferenceWorkload("llama-0", "uid-1", 1);
  w.mutable_spec()->set_termination_grace_period_seconds(5);
  ASSERT_TRUE(Apply(1, {w}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").phase() == "Ready"; }));
  ASSERT_EQ(Containers().size(), 1u);

  const size_t reported = reports_.size();
  ASSERT_TRUE(Apply(2, {}));
  strand_->Run([&] { EXPECT_TRUE(supervisor_->Reports().empty()); });
  clock_.Advance(absl::Milliseconds(4900));
  ASSERT_EQ(Containers().size(), 1u);
  EXPECT_EQ(Containers()[0].state, ContainerState::kRunning);
  clock_.Advance(absl::Milliseconds(200));
  EXPECT_TRUE(Containers().empty());
  strand_->Run([&] { EXPECT_EQ(supervisor_->terminating(), 0u); });
  // Once its containers are gone, the removed workload is reported Stopped, once (the
  // server holds the workload's deletion until it hears so).
  ASSERT_EQ(reports_.size(), reported + 1);
  EXPECT_EQ(reports_.back().name(), "llama-0");
  EXPECT_EQ(reports_.back().uid(), "uid-1");
  EXPECT_EQ(reports_.back().status().phase(), "Stopped");
}

TEST_F(SupervisorTest, OlderGenerationIsIgnored) {
  ASSERT_TRUE(Apply(5, {InferenceWorkload("llama-0", "uid-1", 1)}));
  EXPECT_FALSE(Apply(4, {}));
  EXPECT_FALSE(Apply(5, {}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").phase() == "Ready"; }));
  EXPECT_EQ(Containers().size(), 1u);
  strand_->Run([&] { EXPECT_EQ(supervisor_->applied_generation(), 5); });
  // A new session starts counting again.
  strand_->Run([&] { supervisor_->ResetGeneration(); });
  EXPECT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 1)}));
  EXPECT_EQ(Status("llama-0").phase(), "Ready");
}

TEST_F(SupervisorTest, ChangedWorkloadGenerationReplacesTheContainers) {
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 1, "vllm:1")}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").phase() == "Ready"; }));
  const std::string old_id = Containers().at(0).id;

  ASSERT_TRUE(Apply(2, {InferenceWorkload("llama-0", "uid-1", 2, "vllm:2")}));
  EXPECT_EQ(Status("llama-0").phase(), "Pending");  // Waits for the old one to go.
  EXPECT_EQ(Status("llama-0").observed_generation(), 2);
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").phase() == "Ready"; }));
  auto containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  EXPECT_NE(containers[0].id, old_id);
  EXPECT_EQ(containers[0].image, "vllm:2");
  EXPECT_EQ(containers[0].labels.at(labels::kWorkloadGeneration), "2");

  // The same generation again changes nothing.
  ASSERT_TRUE(Apply(3, {InferenceWorkload("llama-0", "uid-1", 2, "vllm:2")}));
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(Containers().at(0).id, containers[0].id);
}

TEST_F(SupervisorTest, RestartedSupervisorAdoptsItsContainersWithoutRestartingThem) {
  ASSERT_TRUE(
      Apply(1, {InferenceWorkload("llama-0", "uid-1", 1), TuningWorkload("tune-0", "uid-t", 1)}));
  ASSERT_TRUE(AdvanceUntil([&] {
    return Status("llama-0").phase() == "Ready" && Status("tune-0").phase() == "Succeeded";
  }));
  const int starts = runtime_->starts();
  const size_t containers = Containers().size();

  Restart();
  absl::Status recovered = absl::UnknownError("not yet");
  strand_->Run([&] { supervisor_->Recover([&](absl::Status s) { recovered = s; }); });
  clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(recovered.ok()) << recovered;
  std::vector<v1::WorkloadReport> adopted;
  strand_->Run([&] { adopted = supervisor_->Reports(); });
  ASSERT_EQ(adopted.size(), 2u);
  EXPECT_EQ(adopted[0].name(), "llama-0");
  EXPECT_EQ(adopted[0].uid(), "uid-1");
  EXPECT_EQ(adopted[0].status().phase(), "Ready");
  EXPECT_EQ(adopted[0].status().endpoint(), "10.0.0.5:5000");
  EXPECT_EQ(adopted[1].status().phase(), "Succeeded");

  // The server's set names the same incarnations: nothing is restarted or recreated. Its
  // copy of the status carries the restarts the old agent counted; the count goes on.
  v1::Workload known = InferenceWorkload("llama-0", "uid-1", 1);
  known.mutable_status()->set_restarts(3);
  ASSERT_TRUE(Apply(1, {known, TuningWorkload("tune-0", "uid-t", 1)}));
  clock_.Advance(absl::Minutes(2));
  EXPECT_EQ(runtime_->starts(), starts);
  EXPECT_EQ(Containers().size(), containers);
  EXPECT_EQ(Status("llama-0").phase(), "Ready");
  EXPECT_EQ(Status("llama-0").restarts(), 3);

  // An adopted workload that crashes is restarted as before.
  runtime_->AddFault({"vllm", SimulatedFault::Kind::kCrash, absl::ZeroDuration(), 1});
  Restart();
  strand_->Run([&] { supervisor_->Recover([](absl::Status) {}); });
  clock_.Advance(absl::ZeroDuration());
  // Another incarnation of the name replaces the adopted one.
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-2", 1)}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").restarts() >= 1; }));
  for (const auto& c : Containers()) {
    if (c.labels.at(labels::kWorkloadName) == "llama-0") {
      EXPECT_EQ(c.labels.at(labels::kWorkloadUid), "uid-2");
    }
  }
  // The finished tuning workload is no longer desired: its containers are removed.
  for (const auto& c : Containers()) EXPECT_NE(c.labels.at(labels::kWorkloadName), "tune-0");
}

// A runtime whose first `failures` pulls fail with UNAVAILABLE (a registry outage); the rest
// goes to the simulated runtime.
class FlakyPullRuntime : public ContainerRuntime {
 public:
  FlakyPullRuntime(Clock* clock, ContainerRuntime* inner, int failures)
      : clock_(clock), inner_(inner), failures_(failures) {}
  std::string name() const override { return "flaky"; }
  void PullImage(const std::string& image, StatusCallback done) override {
    ++pulls_;
    if (failures_ > 0) {
      --failures_;
      clock_->RunAfter(absl::ZeroDuration(), [done = std::move(done)]() mutable {
        done(absl::UnavailableError("registry unreachable"));
      });
      return;
    }
    inner_->PullImage(image, std::move(done));
  }
  void CreateContainer(const ContainerConfig& config,
                       absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override {
    inner_->CreateContainer(config, std::move(done));
  }
  void StartContainer(const std::string& id, StatusCallback done) override {
    inner_->StartContainer(id, std::move(done));
  }
  void InspectContainer(const std::string& id,
                        absl::AnyInvocable<void(absl::StatusOr<ContainerInfo>)> done) override {
    inner_->InspectContainer(id, std::move(done));
  }
  void StopContainer(const std::string& id, absl::Duration grace, StatusCallback done) override {
    inner_->StopContainer(id, grace, std::move(done));
  }
  void RemoveContainer(const std::string& id, StatusCallback done) override {
    inner_->RemoveContainer(id, std::move(done));
  }
  void ListContainers(
      const std::map<std::string, std::string>& labels,
      absl::AnyInvocable<void(absl::StatusOr<std::vector<ContainerInfo>>)> done) override {
    inner_->ListContainers(labels, std::move(done));
  }
  void ContainerLogs(const std::string& id, int tail_lines,
                     absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) override {
    inner_->ContainerLogs(id, tail_lines, std::move(done));
  }
  ListenerId AddListener(Listener listener) override { return inner_->AddListener(listener); }
  void RemoveListener(ListenerId id) override { inner_->RemoveListener(id); }

  int pulls_ = 0;

 private:
  Clock* const clock_;
  ContainerRuntime* const inner_;
  int failures_;
};

TEST_F(SupervisorTest, TransientPullErrorsAreRetriedWithBackoff) {
  FlakyPullRuntime flaky(&clock_, runtime_.get(), 3);
  supervisor_.reset();
  supervisor_ = std::make_unique<WorkloadSupervisor>(
      options_, &clock_, &flaky, strand_,
      [this](const v1::WorkloadReport& r) { reports_.push_back(r); });
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 1)}));
  clock_.Advance(absl::ZeroDuration());
  EXPECT_EQ(Status("llama-0").phase(), "Pulling");
  EXPECT_EQ(Status("llama-0").reason(), "ImagePullError");
  EXPECT_NE(Status("llama-0").message().find("retrying in 1s"), std::string::npos)
      << Status("llama-0").message();
  clock_.Advance(absl::Seconds(1));  // Second attempt fails: 2 s.
  EXPECT_NE(Status("llama-0").message().find("retrying in 2s"), std::string::npos);
  clock_.Advance(absl::Seconds(2));  // Third fails: 4 s.
  EXPECT_EQ(flaky.pulls_, 3);
  clock_.Advance(absl::Seconds(4));
  EXPECT_EQ(flaky.pulls_, 4);
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").phase() == "Ready"; }));
  EXPECT_EQ(Status("llama-0").reason(), "");
  supervisor_.reset();  // Before `flaky` goes.
}

TEST_F(SupervisorTest, ContainerRemovedBehindItsBackIsCreatedAgain) {
  ASSERT_TRUE(Apply(1, {InferenceWorkload("llama-0", "uid-1", 1)}));
  ASSERT_TRUE(AdvanceUntil([&] { return Status("llama-0").phase() == "Ready"; }));
  const std::string id = Containers().at(0).id;
  // Someone kills and removes it; no event says so for the removal.
  runtime_->StopContainer(id, absl::ZeroDuration(), [](absl::Status) {});
  clock_.Advance(absl::ZeroDuration());
  runtime_->RemoveContainer(id, [](absl::Status) {});
  clock_.Advance(absl::ZeroDuration());
  ASSERT_TRUE(AdvanceUntil([&] {
    auto c = Containers();
    return Status("llama-0").phase() == "Ready" && c.size() == 1 && c[0].id != id;
  }));
  EXPECT_EQ(Status("llama-0").restarts(), 1);
}

TEST_F(SupervisorTest, RecoverRemovesHalfCreatedWorkloadsAndOrphans) {
  // A container with our labels but no workload, and one of a workload with two containers.
  auto create = [&](std::map<std::string, std::string> l) {
    runtime_->PullImage("img:1", [](absl::Status) {});
    clock_.Advance(absl::Seconds(1));
    ContainerConfig config;
    config.name = "c" + std::to_string(Containers().size());
    config.image = "img:1";
    config.labels = std::move(l);
    runtime_->CreateContainer(config, [](absl::StatusOr<std::string>) {});
    clock_.Advance(absl::ZeroDuration());
  };
  create({{labels::kManagedBy, labels::kManagedByValue}, {labels::kNode, "node-1"}});
  create({{labels::kManagedBy, labels::kManagedByValue},
          {labels::kNode, "node-1"},
          {labels::kWorkloadNamespace, "default"},
          {labels::kWorkloadName, "half-0"},
          {labels::kWorkloadUid, "u"},
          {labels::kWorkloadGeneration, "1"},
          {labels::kContainerKind, labels::kKindMain},
          {labels::kContainerIndex, "0"},
          {labels::kContainerCount, "2"}});
  create({{"something", "else"}});  // Not ours: left alone.
  ASSERT_EQ(Containers().size(), 3u);
  strand_->Run([&] { supervisor_->Recover([](absl::Status) {}); });
  clock_.Advance(absl::Seconds(1));
  auto left = Containers();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].labels.count("something"), 1u);
  strand_->Run([&] { EXPECT_TRUE(supervisor_->Reports().empty()); });
}

}  // namespace
}  // namespace kaito::agent
