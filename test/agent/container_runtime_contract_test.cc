// The contract of `ContainerRuntime` (container_runtime.h), as one suite that every
// implementation runs: today the simulated runtime; the Docker Engine API runtime joins with
// its own harness (a real Podman service), so the fake cannot drift from the real thing.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>

#include "agent/runtime/container_runtime.h"
#include "agent/runtime/simulated_runtime.h"
#include "agent/supervisor/container_labels.h"
#include "common/clock.h"

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

using HarnessFactory = std::function<std::unique_ptr<RuntimeHarness>()>;

class ContainerRuntimeContractTest : public ::testing::TestWithParam<HarnessFactory> {
 protected:
  void SetUp() override {
    harness_ = GetParam()();
    runtime_ = harness_->runtime();
  }

  // Calls `start(callback)` and drives the runtime until the callback ran; returns its value.
  template <typename T>
  T Call(const std::function<void(absl::AnyInvocable<void(T)>)>& start) {
    std::optional<T> result;
    bool inline_call = true;
    start([&](T value) {
      EXPECT_FALSE(inline_call) << "the callback ran inside the call";
      result.emplace(std::move(value));
    });
    inline_call = false;
    EXPECT_TRUE(harness_->DriveUntil([&] { return result.has_value(); }));
    return result.has_value() ? std::move(*result) : T(absl::DeadlineExceededError("no reply"));
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
  std::vector<ContainerState> states;
  const auto listener = runtime_->AddListener([&](const ContainerInfo& info) {
    if (info.id == *id) states.push_back(info.state);
  });
  ASSERT_TRUE(Start(*id).ok());
  ASSERT_TRUE(Stop(*id).ok());
  ASSERT_TRUE(harness_->DriveUntil(
      [&] { return !states.empty() && states.back() == ContainerState::kExited; }));
  EXPECT_EQ(states.front(), ContainerState::kRunning);
  runtime_->RemoveListener(listener);
  const size_t seen = states.size();
  ASSERT_TRUE(Start(*id).ok());
  EXPECT_EQ(states.size(), seen);
  ASSERT_TRUE(Stop(*id).ok());
  EXPECT_TRUE(Remove(*id).ok());
}

INSTANTIATE_TEST_SUITE_P(Simulated, ContainerRuntimeContractTest,
                         ::testing::Values(HarnessFactory([] {
                           return std::make_unique<SimulatedHarness>();
                         })));

}  // namespace
}  // namespace kaito::agent
