// The agent's session against a fake NodeService on 127.0.0.1, with a fake clock for its timers
// and the simulated runtime. gRPC runs on its own threads, so the tests wait on conditions
// (with deadlines) for what crosses the network.
#include "agent/agent.h"

#include <gtest/gtest.h>

#include <memory>

#include "agent/gpu/fake_gpu_probe.h"
#include "agent/runtime/simulated_runtime.h"
#include "agent_test_util.h"
#include "common/version.h"
#include "fake_node_service.h"
#include "support/process.h"

namespace kaito::agent {
namespace {

using kaito::testing::WaitFor;
using testing::AdvanceUntil;
using testing::FakeNodeServer;
using testing::InferenceWorkload;
using testing::Phases;

constexpr absl::Duration kWait = absl::Seconds(20);

class AgentTest : public ::testing::Test {
 protected:
  explicit AgentTest(FakeNodeServer::Options server_options = Welcome(2000))
      : server_(server_options) {}

  static FakeNodeServer::Options Welcome(int64_t heartbeat_ms) {
    FakeNodeServer::Options o;
    o.heartbeat_interval_ms = heartbeat_ms;
    o.lease_ttl_ms = 3 * heartbeat_ms;
    return o;
  }

  void SetUp() override {
    ASSERT_TRUE(server_.Start().ok());
    SimulatedRuntime::Options timing;
    timing.pull_delay = absl::Milliseconds(500);
    timing.start_delay = absl::Milliseconds(500);
    timing.ready_delay = absl::Seconds(1);
    runtime_ = std::make_unique<SimulatedRuntime>(&clock_, timing);
    probe_ = std::move(*FakeGpuProbe::FromSpec("2xA100:80:8.0", "node-1"));
  }

  void TearDown() override {
    agent_.reset();
    server_.Shutdown();
  }

  AgentOptions Options() {
    AgentOptions o;
    o.node_name = "node-1";
    o.labels = {{"kaito.sh/pool", "gpu"}, {"apps", "llm"}};
    o.instance_type = "Standard_NC24ads_A100_v4";
    o.provider_id = "azure:///subscriptions/s/vm-1";
    v1::Taint taint;
    taint.set_key("sku");
    taint.set_value("gpu");
    taint.set_effect("NoSchedule");
    o.taints = {taint};
    o.address = "10.1.2.3";
    o.server_address = server_.address();
    o.jitter_seed = 42;
    return o;
  }

  void StartAgent(AgentOptions options) {
    agent_ = std::make_unique<Agent>(std::move(options), &clock_, probe_.get(), runtime_.get());
    agent_->Start();
    // The runtime's listing (adoption) completes on the fake clock, even with no delay.
    clock_.Advance(absl::ZeroDuration());
  }

  void SendDesired(int64_t generation, const std::vector<v1::Workload>& workloads) {
    v1::ServerMessage message;
    message.mutable_desired()->set_generation(generation);
    for (const auto& w : workloads) *message.mutable_desired()->add_workloads() = w;
    ASSERT_TRUE(server_.Send("node-1", message));
  }

  bool ReportedPhase(const std::string& phase) {
    for (const auto& r : server_.WorkloadReports("node-1")) {
      if (r.status().phase() == phase) return true;
    }
    return false;
  }

  FakeClock clock_;
  FakeNodeServer server_;
  std::unique_ptr<SimulatedRuntime> runtime_;
  std::unique_ptr<FakeGpuProbe> probe_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentTest, HelloCarriesTheInventory) {
  StartAgent(Options());
  ASSERT_TRUE(WaitFor([&] { return server_.Hellos("node-1").size() == 1; }, kWait));
  const v1::AgentHello hello = server_.Hellos("node-1")[0];
  EXPECT_EQ(hello.node_name(), "node-1");
  EXPECT_EQ(hello.labels().at("kaito.sh/pool"), "gpu");
  EXPECT_EQ(hello.labels().at("apps"), "llm");
  EXPECT_EQ(hello.instance_type(), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(hello.provider_id(), "azure:///subscriptions/s/vm-1");
  EXPECT_EQ(hello.address(), "10.1.2.3");
  EXPECT_EQ(hello.agent_version(), Version());
  ASSERT_EQ(hello.taints_size(), 1);
  EXPECT_EQ(hello.taints(0).effect(), "NoSchedule");
  ASSERT_EQ(hello.gpus_size(), 2);
  EXPECT_EQ(hello.gpus(0).model(), "A100");
  EXPECT_EQ(hello.gpus(0).memory_bytes(), int64_t{80} << 30);
  EXPECT_EQ(hello.gpus(1).uuid(), "GPU-node-1-1");
  EXPECT_TRUE(hello.gpus(1).healthy());
  EXPECT_EQ(hello.running_size(), 0);
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
  EXPECT_EQ(agent_->state().lease_ttl_ms, 6000);
  EXPECT_EQ(agent_->state().node_uid, "uid-node-1");
  // The Hello is the first message of the stream.
  EXPECT_TRUE(server_.Messages("node-1")[0].has_hello());
}

TEST_F(AgentTest, HeartbeatsFollowTheWelcomeInterval) {
  StartAgent(Options());
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_EQ(agent_->state().heartbeats_sent, 0);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(WaitFor([&] { return server_.Heartbeats("node-1").size() == 1; }, kWait));
  EXPECT_EQ(server_.Heartbeats("node-1")[0].sequence(), 1);
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_EQ(agent_->state().heartbeats_sent, 1);
  clock_.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(WaitFor([&] { return server_.Heartbeats("node-1").size() == 2; }, kWait));
  EXPECT_EQ(server_.Heartbeats("node-1")[1].sequence(), 2);
  // Heartbeats due while one is still queued are coalesced: the newest goes.
  for (int i = 0; i < 5; ++i) clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(agent_->state().heartbeat_sequence, 7);
  ASSERT_TRUE(WaitFor([&] { return server_.Heartbeats("node-1").back().sequence() == 7; }, kWait));
  const auto beats = server_.Heartbeats("node-1");
  for (size_t i = 1; i < beats.size(); ++i) EXPECT_GT(beats[i].sequence(), beats[i - 1].sequence());
}

TEST_F(AgentTest, DesiredWorkloadsAreReportedUpToReady) {
  StartAgent(Options());
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
  SendDesired(1, {InferenceWorkload("llama-0", "uid-1", 4, "vllm:1", 5000)});
  ASSERT_TRUE(WaitFor([&] { return agent_->state().desired_generation == 1; }, kWait));
  ASSERT_TRUE(AdvanceUntil(clock_, [&] { return ReportedPhase("Ready"); }));
  const auto reports = server_.WorkloadReports("node-1");
  const v1::WorkloadReport& ready = reports.back();
  EXPECT_EQ(ready.namespace_(), "default");
  EXPECT_EQ(ready.name(), "llama-0");
  EXPECT_EQ(ready.uid(), "uid-1");
  EXPECT_EQ(ready.status().phase(), "Ready");
  EXPECT_EQ(ready.status().endpoint(), "10.1.2.3:5000");
  EXPECT_EQ(ready.status().observed_generation(), 4);
  // The phases arrive in order (queued reports of one workload may be coalesced).
  const std::vector<std::string> order = {"Pending", "Pulling", "Starting", "Running", "Ready"};
  size_t at = 0;
  for (const std::string& phase : Phases(reports)) {
    while (at < order.size() && order[at] != phase) ++at;
    ASSERT_LT(at, order.size()) << "phase " << phase << " out of order";
  }
  ASSERT_EQ(agent_->workloads().size(), 1u);
  EXPECT_EQ(agent_->workloads()[0].status().phase(), "Ready");

  // The workload leaves the desired set: its container goes.
  SendDesired(2, {});
  ASSERT_TRUE(AdvanceUntil(clock_, [&] { return runtime_->Containers().empty(); }));
  EXPECT_TRUE(agent_->workloads().empty());
}

TEST_F(AgentTest, ReconnectsAfterTheServerRestartsAndListsTheRunningWorkload) {
  StartAgent(Options());
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
  SendDesired(1, {InferenceWorkload("llama-0", "uid-1", 1)});
  ASSERT_TRUE(AdvanceUntil(clock_, [&] { return ReportedPhase("Ready"); }));
  const int starts = runtime_->starts();
  const std::string container = runtime_->Containers().at(0).id;

  const int port = server_.port();
  server_.Shutdown();
  ASSERT_TRUE(WaitFor([&] { return !agent_->state().connected; }, kWait));
  ASSERT_TRUE(server_.Start(port).ok());
  // Past the reconnect backoff (at most 1 s for the first attempt; more if an attempt fails).
  ASSERT_TRUE(AdvanceUntil(
      clock_, [&] { return server_.Hellos("node-1").size() == 2; }, absl::Milliseconds(250)));
  const v1::AgentHello hello = server_.Hellos("node-1")[1];
  ASSERT_EQ(hello.running_size(), 1);
  EXPECT_EQ(hello.running(0).name(), "llama-0");
  EXPECT_EQ(hello.running(0).uid(), "uid-1");
  EXPECT_EQ(hello.running(0).status().phase(), "Ready");
  EXPECT_EQ(hello.gpus_size(), 2);
  // Nothing was restarted.
  EXPECT_EQ(runtime_->starts(), starts);
  EXPECT_EQ(runtime_->Containers().at(0).id, container);
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
  EXPECT_GE(agent_->state().sessions, 2);
  // The new session takes the server's set whatever its generation.
  SendDesired(1, {InferenceWorkload("llama-0", "uid-1", 1)});
  ASSERT_TRUE(WaitFor([&] { return agent_->state().desired_generation == 1; }, kWait));
  EXPECT_EQ(runtime_->Containers().at(0).id, container);
}

TEST_F(AgentTest, GpuReportIsSentOnlyWhenTheProbeChanges) {
  AgentOptions options = Options();
  options.gpu_probe_interval = absl::Seconds(30);
  StartAgent(options);
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
  // A GPU falls off the bus between two probes.
  auto gpus = *probe_->Probe();
  gpus[1].set_healthy(false);
  gpus[1].set_health_reason("XID 79");
  clock_.Advance(absl::Seconds(30));  // Unchanged: no report.
  probe_->Set(gpus);
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(WaitFor([&] { return !server_.GpuReports("node-1").empty(); }, kWait));
  const v1::GpuReport first = server_.GpuReports("node-1")[0];
  ASSERT_EQ(first.gpus_size(), 2);
  EXPECT_FALSE(first.gpus(1).healthy());
  EXPECT_EQ(first.gpus(1).health_reason(), "XID 79");
  clock_.Advance(absl::Seconds(30));
  clock_.Advance(absl::Seconds(30));
  // Heartbeats pass the GPU reports in the stream, so once the last heartbeat is in, any
  // second report would be too.
  const int64_t last = agent_->state().heartbeat_sequence;
  ASSERT_GT(last, 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto beats = server_.Heartbeats("node-1");
        return !beats.empty() && beats.back().sequence() == last;
      },
      kWait));
  EXPECT_EQ(server_.GpuReports("node-1").size(), 1u);
}

TEST_F(AgentTest, StopEndsTheSessionAndIsIdempotent) {
  StartAgent(Options());
  ASSERT_TRUE(WaitFor([&] { return server_.open_streams("node-1") == 1; }, kWait));
  agent_->Stop();
  agent_->Stop();
  EXPECT_FALSE(agent_->state().connected);
  ASSERT_TRUE(WaitFor([&] { return server_.open_streams("node-1") == 0; }, kWait));
  EXPECT_EQ(clock_.pending_timers(), 0u) << "timers left armed after Stop";
  agent_.reset();
}

TEST_F(AgentTest, RetriesWithBackoffWhileTheServerIsDown) {
  const int port = server_.port();
  server_.Shutdown();
  AgentOptions options = Options();
  options.server_address = "127.0.0.1:" + std::to_string(port);
  StartAgent(options);
  ASSERT_TRUE(
      WaitFor([&] { return agent_->state().sessions >= 1 && !agent_->state().connected; }, kWait));
  ASSERT_TRUE(server_.Start(port).ok());
  ASSERT_TRUE(AdvanceUntil(
      clock_, [&] { return server_.Hellos("node-1").size() == 1; }, absl::Milliseconds(250)));
  ASSERT_TRUE(WaitFor([&] { return agent_->state().welcomed; }, kWait));
}

class AgentWithoutWelcomeTest : public AgentTest {
 protected:
  AgentWithoutWelcomeTest()
      : AgentTest([] {
          FakeNodeServer::Options o;
          o.send_welcome = false;
          return o;
        }()) {}
};

TEST_F(AgentWithoutWelcomeTest, DialsAgainWhenNoWelcomeComes) {
  AgentOptions options = Options();
  options.welcome_timeout = absl::Seconds(5);
  StartAgent(options);
  ASSERT_TRUE(WaitFor([&] { return server_.Hellos("node-1").size() == 1; }, kWait));
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(AdvanceUntil(clock_, [&] { return server_.Hellos("node-1").size() == 2; }));
  EXPECT_EQ(agent_->state().heartbeats_sent, 0);
}

}  // namespace
}  // namespace kaito::agent
