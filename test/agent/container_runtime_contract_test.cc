// The contract of `ContainerRuntime` (container_runtime.h), as one suite that every
// implementation runs: the simulated runtime, and the Docker Engine API runtime against a
// real Podman service and a real registry that the suite starts, so the fake cannot drift
// from the real thing.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "agent/runtime/container_runtime.h"
#include "agent/runtime/docker_runtime.h"
#include "agent/runtime/simulated_runtime.h"
#include "agent/supervisor/container_labels.h"
#include "common/clock.h"
#include "podman_world.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::agent {
namespace {

// What the suite needs from an implementation.
class RuntimeHarness {
 public:
  virtual ~RuntimeHarness() = default;
  virtual ContainerRuntime* runtime() = 0;
  // Lets the runtime make progress until `done` holds (or gives up).
  virtual bool DriveUntil(const std::function<bool()>& done) = 0;
  // An image that pulls, one whose container runs until stopped, and one that cannot be found.
  virtual std::string image() = 0;
  virtual std::string missing_image() = 0;
};

class SimulatedHarness : public RuntimeHarness {
 public:
  SimulatedHarness() {
    SimulatedRuntime::Options o;
    o.faults.push_back({"does-not-exist", SimulatedFault::Kind::kPullFailure});
    runtime_ = std::make_unique<SimulatedRuntime>(&clock_, o);
  }
  ContainerRuntime* runtime() override { return runtime_.get(); }
  bool DriveUntil(const std::function<bool()>& done) override {
    for (int i = 0; i < 1000 && !done(); ++i) clock_.Advance(absl::Milliseconds(100));
    return done();
  }
  std::string image() override { return "busybox:stable"; }
  std::string missing_image() override { return "does-not-exist.invalid/none:1"; }

 private:
  FakeClock clock_;
  std::unique_ptr<SimulatedRuntime> runtime_;
};

class DockerHarness : public RuntimeHarness {
 public:
  DockerHarness() {
    PodmanWorld& world = PodmanWorld::Get();
    if (!world.error.empty()) {
      ADD_FAILURE() << "the Podman service or registry did not start: " << world.error;
      return;
    }
    DockerRuntimeOptions o;
    o.docker_host = world.podman->docker_host();
    auto runtime = DockerRuntime::Connect(&clock_, o);
    if (!runtime.ok()) {
      ADD_FAILURE() << runtime.status();
      return;
    }
    runtime_ = *std::move(runtime);
  }
  ~DockerHarness() override {
    // What a test left behind goes, so names are free for the next.
    if (runtime_ != nullptr) {
      PodmanWorld::Get().podman->Podman({"rm", "--all", "--force", "--time", "0"});
    }
  }
  ContainerRuntime* runtime() override { return runtime_.get(); }
  bool DriveUntil(const std::function<bool()>& done) override {
    return testing::WaitFor(done, absl::Seconds(60));
  }
  std::string image() override { return PodmanWorld::Get().image; }
  std::string missing_image() override {
    return PodmanWorld::Get().registry->host() + "/kaito-test/missing:1";
  }

 private:
  RealClock clock_;
  std::unique_ptr<DockerRuntime> runtime_;
};

// A named factory: the name is what gtest (and ctest) print for the parameter.
struct HarnessFactory {
  std::string name;
  std::function<std::unique_ptr<RuntimeHarness>()> make;
  friend void PrintTo(const HarnessFactory& f, std::ostream* os) { *os << f.name; }
};

class ContainerRuntimeContractTest : public ::testing::TestWithParam<HarnessFactory> {
 protected:
  void SetUp() override {
    harness_ = GetParam().make();
    runtime_ = harness_->runtime();
    if (runtime_ == nullptr) GTEST_SKIP() << "no runtime (the failure above says why)";
  }

  // Calls `start(callback)` and drives the runtime until the callback ran; returns its value.
  template <typename T>
  T Call(const std::function<void(absl::AnyInvocable<void(T)>)>& start) {
    // The callback may run on the runtime's own thread.
    struct Result {
      absl::Mutex mu;
      std::optional<T> value;
      bool inline_call = true;
      bool ran_inline = false;
    };
    auto result = std::make_shared<Result>();
    const std::thread::id caller = std::this_thread::get_id();
    start([result, caller](T value) {
      absl::MutexLock lock(&result->mu);
      // Inline means inside the call, on the caller's thread (another thread may well
      // answer before the call has returned).
      if (result->inline_call && std::this_thread::get_id() == caller) result->ran_inline = true;
      result->value.emplace(std::move(value));
    });
    {
      absl::MutexLock lock(&result->mu);
      result->inline_call = false;
      EXPECT_FALSE(result->ran_inline) << "the callback ran inside the call";
    }
    EXPECT_TRUE(harness_->DriveUntil([&] {
      absl::MutexLock lock(&result->mu);
      return result->value.has_value();
    }));
    absl::MutexLock lock(&result->mu);
    return result->value.has_value() ? std::move(*result->value)
                                     : T(absl::DeadlineExceededError("no reply"));
  }

  absl::Status Pull(const std::string& image) {
    return Call<absl::Status>([&](auto done) { runtime_->PullImage(image, std::move(done)); });
  }
  absl::StatusOr<std::string> Create(const std::string& name,
                                     std::map<std::string, std::string> labels = {}) {
    ContainerConfig config;
    config.name = name;
    config.image = harness_->image();
    config.entrypoint = {"sleep", "3600"};
    config.labels = std::move(labels);
    return Call<absl::StatusOr<std::string>>(
        [&](auto done) { runtime_->CreateContainer(config, std::move(done)); });
  }
  absl::Status Start(const std::string& id) {
    return Call<absl::Status>([&](auto done) { runtime_->StartContainer(id, std::move(done)); });
  }
  absl::Status Stop(const std::string& id) {
    return Call<absl::Status>(
        [&](auto done) { runtime_->StopContainer(id, absl::Seconds(1), std::move(done)); });
  }
  absl::Status Remove(const std::string& id) {
    return Call<absl::Status>([&](auto done) { runtime_->RemoveContainer(id, std::move(done)); });
  }
  absl::StatusOr<ContainerInfo> Inspect(const std::string& id) {
    return Call<absl::StatusOr<ContainerInfo>>(
        [&](auto done) { runtime_->InspectContainer(id, std::move(done)); });
  }
  absl::StatusOr<std::vector<ContainerInfo>> List(std::map<std::string, std::string> labels) {
    return Call<absl::StatusOr<std::vector<ContainerInfo>>>(
        [&](auto done) { runtime_->ListContainers(labels, std::move(done)); });
  }

  std::unique_ptr<RuntimeHarness> harness_;
  ContainerRuntime* runtime_ = nullptr;
};

TEST_P(ContainerRuntimeContractTest, ContainerLifecycle) {
  ASSERT_TRUE(Pull(harness_->image()).ok());
  auto id = Create("contract-life", {{"test", "life"}});
  ASSERT_TRUE(id.ok()) << id.status();
  auto created = Inspect(*id);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->state, ContainerState::kCreated);
  EXPECT_EQ(created->name, "contract-life");
  EXPECT_EQ(created->labels.at("test"), "life");
  ASSERT_TRUE(Start(*id).ok());
  EXPECT_EQ(Inspect(*id)->state, ContainerState::kRunning);
  EXPECT_TRUE(Start(*id).ok()) << "start of a running container succeeds";
  EXPECT_EQ(Remove(*id).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Stop(*id).ok());
  auto stopped = Inspect(*id);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->state, ContainerState::kExited);
  EXPECT_TRUE(Stop(*id).ok()) << "stop of a stopped container succeeds";
  ASSERT_TRUE(Remove(*id).ok());
  EXPECT_EQ(Inspect(*id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Remove(*id).code(), absl::StatusCode::kNotFound);
}

TEST_P(ContainerRuntimeContractTest, ErrorsAreClassifiedByCode) {
  EXPECT_EQ(Pull(harness_->missing_image()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Inspect("no-such-container").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Start("no-such-container").code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(Pull(harness_->image()).ok());
  auto id = Create("contract-dup");
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(Create("contract-dup").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(Remove(*id).ok());
}

TEST_P(ContainerRuntimeContractTest, ListFiltersByEveryLabel) {
  ASSERT_TRUE(Pull(harness_->image()).ok());
  auto a = Create("contract-a", {{"app", "x"}, {"node", "1"}});
  auto b = Create("contract-b", {{"app", "x"}, {"node", "2"}});
  ASSERT_TRUE(a.ok() && b.ok());
  auto both = List({{"app", "x"}});
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->size(), 2u);
  auto one = List({{"app", "x"}, {"node", "2"}});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].id, *b);
  EXPECT_TRUE(List({{"app", "y"}})->empty());
  EXPECT_TRUE(Remove(*a).ok());
  EXPECT_TRUE(Remove(*b).ok());
}

TEST_P(ContainerRuntimeContractTest, ListenersSeeStateChangesUntilRemoved) {
  ASSERT_TRUE(Pull(harness_->image()).ok());
  auto id = Create("contract-events");
  ASSERT_TRUE(id.ok());
  // Shared with the listener: a call already under way may finish after RemoveListener.
  struct Seen {
    absl::Mutex mu;
    std::vector<ContainerState> states;
  };
  auto seen = std::make_shared<Seen>();
  const std::string watched = *id;
  const auto listener = runtime_->AddListener([seen, watched](const ContainerInfo& info) {
    absl::MutexLock lock(&seen->mu);
    if (info.id == watched) seen->states.push_back(info.state);
  });
  auto last_state = [&] {
    absl::MutexLock lock(&seen->mu);
    return seen->states.empty() ? std::optional<ContainerState>() : seen->states.back();
  };
  ASSERT_TRUE(Start(*id).ok());
  ASSERT_TRUE(harness_->DriveUntil([&] { return last_state() == ContainerState::kRunning; }));
  ASSERT_TRUE(Stop(*id).ok());
  ASSERT_TRUE(harness_->DriveUntil([&] { return last_state() == ContainerState::kExited; }));
  runtime_->RemoveListener(listener);
  size_t count;
  {
    absl::MutexLock lock(&seen->mu);
    count = seen->states.size();
    EXPECT_EQ(seen->states.front(), ContainerState::kRunning);
  }
  ASSERT_TRUE(Start(*id).ok());
  ASSERT_TRUE(Stop(*id).ok());
  {
    absl::MutexLock lock(&seen->mu);
    EXPECT_EQ(seen->states.size(), count);
  }
  EXPECT_TRUE(Remove(*id).ok());
}

INSTANTIATE_TEST_SUITE_P(Simulated, ContainerRuntimeContractTest,
                         ::testing::Values(HarnessFactory{
                             "simulated", [] { return std::make_unique<SimulatedHarness>(); }}),
                         [](const auto& info) { return info.param.name; });
INSTANTIATE_TEST_SUITE_P(DockerApiOnPodman, ContainerRuntimeContractTest,
                         ::testing::Values(HarnessFactory{
                             "podman", [] { return std::make_unique<DockerHarness>(); }}),
                         [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace kaito::agent
