// The kaito-agent binary: its flag checks, and a run against the fake NodeService that ends
// with SIGTERM.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "fake_node_service.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::agent {
namespace {

using kaito::testing::BinDir;
using kaito::testing::RunCommand;
using kaito::testing::WaitFor;

std::string Agent() { return BinDir() + "/kaito-agent"; }

TEST(AgentBinaryTest, PrintsHelp) {
  auto r = RunCommand({Agent(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--server", "--node-name", "--labels", "--instance-type", "--runtime", "--docker-host",
        "--gpu-probe", "--fake-gpus", "--state-dir", "--simulate-fault", "--listen", "--port-file",
        "--metrics-listen", "--log-level", "--log-format", "serves no gRPC"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag;
  }
}

TEST(AgentBinaryTest, RejectsBadFlagsWithAClearMessage) {
  struct Case {
    std::vector<std::string> args;
    const char* message;
  };
  const std::vector<std::string> sim = {"--server",  "127.0.0.1:1",      "--runtime",
                                        "simulated", "--metrics-listen", ""};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = {Agent()};
    args.insert(args.end(), sim.begin(), sim.end());
    args.insert(args.end(), more.begin(), more.end());
    return args;
  };
  const Case cases[] = {
      {{Agent(), "--server", "127.0.0.1:1", "--runtime", "docker", "--docker-host",
        "tcp://127.0.0.1:2375", "--fake-gpus", "1xA100:80"},
       "--docker-host \"tcp://127.0.0.1:2375\": want unix:///PATH"},
      {{Agent(), "--server", "127.0.0.1:1", "--runtime", "docker", "--docker-gpus", "all",
        "--fake-gpus", "1xA100:80"},
       "--docker-gpus \"all\": want auto, cdi, device-requests or none"},
      {{Agent(), "--server", "127.0.0.1:1", "--runtime", "docker", "--cdi-gpu-kind", "nvidia",
        "--fake-gpus", "1xA100:80"},
       "--cdi-gpu-kind \"nvidia\": want VENDOR/CLASS"},
      {{Agent(), "--server", "127.0.0.1:1", "--runtime", "containerd"},
       "--runtime \"containerd\": want simulated or docker"},
      {with({"--gpu-probe", "nvml", "--fake-gpus", "1xA100:80"}),
       "--fake-gpus and --fake-gpus-file need --gpu-probe fake"},
      {with({"--fake-gpus", "2xA100"}), "fake GPU spec \"2xA100\""},
      {with({"--fake-gpus", "1xA100:80", "--labels", "a=b,bad key=1"}),
       "--labels item \"bad key=1\""},
      {with({"--fake-gpus", "1xA100:80", "--simulated-pull-delay", "soon"}),
       "--simulated-pull-delay \"soon\""},
      {with({"--fake-gpus", "1xA100:80", "--simulate-fault", "x=explode"}),
       "unknown fault \"explode\""},
      {with({"--fake-gpus", "1xA100:80", "--node-name", "Not_A_Name"}), "--node-name"},
  };
  for (const Case& c : cases) {
    auto r = RunCommand(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.message << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
  EXPECT_NE(RunCommand({Agent()}).exit_code, 0);  // --server is required.
}

TEST(AgentBinaryTest, ConnectsWritesItsPortAndStopsOnSigterm) {
  testing::FakeNodeServer server;
  ASSERT_TRUE(server.Start().ok());
  kaito::testing::TempDir dir;
  auto daemon = kaito::testing::Daemon::Start({Agent(),
                                               "--server",
                                               server.address(),
                                               "--node-name",
                                               "bin-node",
                                               "--runtime",
                                               "simulated",
                                               "--fake-gpus",
                                               "2xA10:24:8.6",
                                               "--labels",
                                               "pool=a",
                                               "--instance-type",
                                               "Standard_NV36ads_A10_v5",
                                               "--metrics-listen",
                                               "127.0.0.1:0",
                                               "--port-file",
                                               dir.File("port"),
                                               "--state-dir",
                                               dir.File("state"),
                                               "--log-level",
                                               "debug"},
                                              dir.File("agent.log"));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  ASSERT_TRUE(WaitFor([&] { return server.Hellos("bin-node").size() == 1; }, absl::Seconds(30)))
      << kaito::testing::ReadFile(dir.File("agent.log"));
  const auto hello = server.Hellos("bin-node")[0];
  EXPECT_EQ(hello.gpus_size(), 2);
  EXPECT_EQ(hello.gpus(0).compute_capability(), "8.6");
  EXPECT_EQ(hello.labels().at("pool"), "a");
  EXPECT_EQ(hello.instance_type(), "Standard_NV36ads_A10_v5");
  int port = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::SimpleAtoi(
                   absl::StripAsciiWhitespace(kaito::testing::ReadFile(dir.File("port"))), &port) &&
               port > 0;
      },
      absl::Seconds(10)));
  // A second agent cannot take the same state directory.
  auto second =
      RunCommand({Agent(), "--server", server.address(), "--runtime", "simulated", "--fake-gpus",
                  "1xA10:24", "--metrics-listen", "", "--state-dir", dir.File("state")});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_NE(second.err.find("in use by another kaito-agent"), std::string::npos) << second.err;

  EXPECT_EQ(daemon->Stop(absl::Seconds(20)), 0);
  EXPECT_TRUE(WaitFor([&] { return server.open_streams("bin-node") == 0; }, absl::Seconds(10)));
  const std::string log = kaito::testing::ReadFile(dir.File("agent.log"));
  EXPECT_NE(log.find("NOTHING REALLY RUNS"), std::string::npos) << log;
}

// --gpu-probe nvml with the fake NVML library (test/agent/fake_nvml.c): the Hello lists the
// driver's GPUs.
TEST(AgentBinaryTest, NvmlProbeReportsTheDriversGpus) {
  testing::FakeNodeServer server;
  ASSERT_TRUE(server.Start().ok());
  kaito::testing::TempDir dir;
  {
    std::ofstream config(dir.File("nvml.conf"));
    config << "driver=550.54.15\n"
           << "gpu uuid=GPU-bin-0 name=NVIDIA_A10 mem_total=25769803776 mem_used=0 cc=8.6\n";
  }
  setenv("FAKE_NVML_CONFIG", dir.File("nvml.conf").c_str(), 1);
  auto daemon = kaito::testing::Daemon::Start(
      {Agent(), "--server", server.address(), "--node-name", "nvml-node", "--runtime", "simulated",
       "--gpu-probe", "nvml", "--nvml-library", FAKE_NVML_PATH, "--metrics-listen", ""},
      dir.File("agent.log"));
  unsetenv("FAKE_NVML_CONFIG");  // The child has its copy.
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  ASSERT_TRUE(WaitFor([&] { return server.Hellos("nvml-node").size() == 1; }, absl::Seconds(30)))
      << kaito::testing::ReadFile(dir.File("agent.log"));
  const auto hello = server.Hellos("nvml-node")[0];
  ASSERT_EQ(hello.gpus_size(), 1);
  EXPECT_EQ(hello.gpus(0).uuid(), "GPU-bin-0");
  EXPECT_EQ(hello.gpus(0).model(), "NVIDIA A10");
  EXPECT_EQ(hello.gpus(0).compute_capability(), "8.6");
  EXPECT_TRUE(hello.gpus(0).healthy());
  EXPECT_EQ(daemon->Stop(absl::Seconds(20)), 0);
  const std::string log = kaito::testing::ReadFile(dir.File("agent.log"));
  EXPECT_NE(log.find("NVIDIA driver 550.54.15, 1 GPU(s)"), std::string::npos) << log;
}

// Without an NVIDIA driver the agent still starts, says so and reports no GPUs.
TEST(AgentBinaryTest, StartsWithoutAnNvidiaDriverAndReportsNoGpus) {
  testing::FakeNodeServer server;
  ASSERT_TRUE(server.Start().ok());
  kaito::testing::TempDir dir;
  auto daemon = kaito::testing::Daemon::Start(
      {Agent(), "--server", server.address(), "--node-name", "no-driver", "--runtime", "simulated",
       "--gpu-probe", "nvml", "--nvml-library", dir.File("libnvidia-ml.so.1"), "--metrics-listen",
       ""},
      dir.File("agent.log"));
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  ASSERT_TRUE(WaitFor([&] { return server.Hellos("no-driver").size() == 1; }, absl::Seconds(30)))
      << kaito::testing::ReadFile(dir.File("agent.log"));
  EXPECT_EQ(server.Hellos("no-driver")[0].gpus_size(), 0);
  EXPECT_EQ(daemon->Stop(absl::Seconds(20)), 0);
  const std::string log = kaito::testing::ReadFile(dir.File("agent.log"));
  EXPECT_NE(log.find("no NVIDIA driver"), std::string::npos) << log;
}

}  // namespace
}  // namespace kaito::agent
