#include "agent/simulated_fleet.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "agent_test_util.h"
#include "fake_node_service.h"
#include "support/process.h"

namespace kaito::agent {
namespace {

using kaito::testing::WaitFor;
using testing::FakeNodeServer;

TEST(SimulatedFleetTest, FiftyNodesSayHelloAndStopRemovesOne) {
  FakeNodeServer server;
  ASSERT_TRUE(server.Start().ok());
  FakeClock clock;
  {
    SimulatedFleet fleet(&clock, SimulatedRuntimeOptions{});
    for (int i = 0; i < 50; ++i) {
      SimulatedNodeSpec spec;
      spec.node_name = "sim-" + std::to_string(i);
      spec.labels = {{"kaito.sh/simulated", "true"}};
      spec.instance_type = "Standard_NC24ads_A100_v4";
      v1::GpuInfo gpu;
      gpu.set_model("A100");
      gpu.set_memory_bytes(int64_t{80} << 30);
      spec.gpus = {gpu};
      spec.server_address = server.address();
      ASSERT_TRUE(fleet.Start(spec).ok()) << spec.node_name;
    }
    SimulatedNodeSpec again;
    again.node_name = "sim-3";
    again.server_address = server.address();
    EXPECT_EQ(fleet.Start(again).code(), absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(fleet.Nodes().size(), 50u);
    clock.Advance(absl::ZeroDuration());  // The runtimes' listings complete on the clock.

    ASSERT_TRUE(WaitFor([&] { return server.Nodes().size() == 50; }, absl::Seconds(30)))
        << server.Nodes().size() << " nodes said Hello";
    ASSERT_TRUE(WaitFor([&] { return server.open_streams() == 50; }, absl::Seconds(30)));
    const v1::AgentHello hello = server.Hellos("sim-7").at(0);
    EXPECT_EQ(hello.instance_type(), "Standard_NC24ads_A100_v4");
    ASSERT_EQ(hello.gpus_size(), 1);
    EXPECT_EQ(hello.gpus(0).uuid(), "GPU-sim-7-0");
    EXPECT_TRUE(hello.gpus(0).healthy());  // Left unset in the spec.

    fleet.Stop("sim-7");
    fleet.Stop("sim-7");  // Idempotent.
    const auto nodes = fleet.Nodes();
    EXPECT_EQ(nodes.size(), 49u);
    EXPECT_EQ(std::count(nodes.begin(), nodes.end(), "sim-7"), 0);
    ASSERT_TRUE(WaitFor([&] { return server.open_streams("sim-7") == 0; }, absl::Seconds(30)));
    EXPECT_EQ(server.open_streams(), 49);
    // The name is free again.
    SimulatedNodeSpec back;
    back.node_name = "sim-7";
    back.server_address = server.address();
    EXPECT_TRUE(fleet.Start(back).ok());
    clock.Advance(absl::ZeroDuration());
    ASSERT_TRUE(WaitFor([&] { return server.Hellos("sim-7").size() == 2; }, absl::Seconds(30)));
  }
  // The fleet's destructor stopped every agent.
  ASSERT_TRUE(WaitFor([&] { return server.open_streams() == 0; }, absl::Seconds(30)));
  EXPECT_EQ(clock.pending_timers(), 0u);
}

TEST(SimulatedFleetTest, SimulatedNodeRunsAWorkloadToReady) {
  FakeNodeServer server;
  ASSERT_TRUE(server.Start().ok());
  FakeClock clock;
  SimulatedFleet fleet(&clock, SimulatedRuntimeOptions{});
  SimulatedNodeSpec spec;
  spec.node_name = "sim-0";
  spec.server_address = server.address();
  ASSERT_TRUE(fleet.Start(spec).ok());
  clock.Advance(absl::ZeroDuration());
  ASSERT_TRUE(WaitFor([&] { return server.Hellos("sim-0").size() == 1; }, absl::Seconds(30)));
  v1::ServerMessage desired;
  desired.mutable_desired()->set_generation(1);
  *desired.mutable_desired()->add_workloads() = testing::InferenceWorkload("llama-0", "u", 1);
  ASSERT_TRUE(server.Send("sim-0", desired));
  ASSERT_TRUE(testing::AdvanceUntil(clock, [&] {
    for (const auto& r : server.WorkloadReports("sim-0")) {
      if (r.status().phase() == "Ready") return true;
    }
    return false;
  }));
}

}  // namespace
}  // namespace kaito::agent
