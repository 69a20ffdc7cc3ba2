// Debian's Prometheus server scraping every daemon, as an operator's would: kaito-server,
// kaito-provisioner, kaito-agent and kaito-kube-shim, each on a kernel-chosen port. Every
// target must be up, and a metric whose value this test caused must read that value through
// Prometheus' query API.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

using json = nlohmann::json;

// A port the kernel hands out now. Prometheus cannot listen on port 0 and say which it
// got, so this is the one place a port is chosen before its listener binds it.
json Get(const std::string& url) {
  RunResult r = RunCommand({"/usr/bin/curl", "-sf", url}, "", {}, absl::Seconds(10));
  if (r.exit_code != 0) return nullptr;
  return json::parse(r.out, nullptr, false);
}

TEST(PrometheusTest, ScrapesEveryDaemonAndSeesWhatTheTestDid) {
  TempDir dir;
  auto server = StartServer(dir.path());
  ASSERT_TRUE(server.ok()) << server.status();
  const int server_metrics = MetricsPortFromLog(dir.File("server.log"));

  auto provisioner = Daemon::Start({BinDir() + "/kaito-provisioner", "--listen", "127.0.0.1:0",
                                    "--metrics-listen", "127.0.0.1:0"},
                                   dir.File("provisioner.log"));
  ASSERT_TRUE(provisioner.ok());
  const int provisioner_metrics = MetricsPortFromLog(dir.File("provisioner.log"));

  auto agent =
      Daemon::Start({BinDir() + "/kaito-agent", "--server", server->address(), "--node-name",
                     "scraped-node", "--runtime", "simulated", "--gpu-probe", "fake", "--fake-gpus",
                     "1xA100:80:8.0", "--metrics-listen", "127.0.0.1:0", "--port-file",
                     dir.File("agent.port"), "--state-dir", dir.File("agent-state")},
                    dir.File("agent.log"));
  ASSERT_TRUE(agent.ok());
  int agent_metrics = 0;
  ASSERT_TRUE(WaitForPortFile(dir.File("agent.port"), &agent_metrics, absl::Seconds(20)));

  auto shim = Daemon::Start({BinDir() + "/kaito-kube-shim", "--server", server->address(),
                             "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"},
                            dir.File("shim.log"));
  ASSERT_TRUE(shim.ok());
  const int shim_metrics = MetricsPortFromLog(dir.File("shim.log"));
  ASSERT_GT(server_metrics, 0);
  ASSERT_GT(provisioner_metrics, 0);
  ASSERT_GT(shim_metrics, 0);

  auto target = [](int port) { return "'127.0.0.1:" + std::to_string(port) + "'"; };
  std::ofstream(dir.File("prometheus.yml"))
      << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
      << "  - job_name: kaito-server\n    static_configs: [{targets: [" << target(server_metrics)
      << "]}]\n"
      << "  - job_name: kaito-provisioner\n    static_configs: [{targets: ["
      << target(provisioner_metrics) << "]}]\n"
      << "  - job_name: kaito-agent\n    static_configs: [{targets: [" << target(agent_metrics)
      << "]}]\n"
      << "  - job_name: kaito-kube-shim\n    static_configs: [{targets: [" << target(shim_metrics)
      << "]}]\n";
  const int prometheus_port = testing::FreeLoopbackPort();
  ASSERT_GT(prometheus_port, 0);
  const std::string api = "http://127.0.0.1:" + std::to_string(prometheus_port) + "/api/v1/";
  auto prometheus =
      Daemon::Start({"/usr/bin/prometheus", "--config.file=" + dir.File("prometheus.yml"),
                     "--storage.tsdb.path=" + dir.File("tsdb"),
                     "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)},
                    dir.File("prometheus.log"));
  ASSERT_TRUE(prometheus.ok());

  // Every target up.
  std::string last;
  EXPECT_TRUE(WaitFor(
      [&] {
        json targets = Get(api + "targets?state=active");
        if (!targets.is_object()) return false;
        last = targets.dump();
        int up = 0;
        for (const auto& t : targets["data"]["activeTargets"]) up += t["health"] == "up";
        return up == 4;
      },
      absl::Seconds(60)))
      << last << ReadFile(dir.File("prometheus.log"));

  // Three workspaces created: the server's counter says 3 through Prometheus.
  for (const char* name : {"scraped-a", "scraped-b", "scraped-c"}) {
    RunResult r = RunCommand(
        {BinDir() + "/kaitoctl", "--server", server->address(), "apply", "-f", "-"},
        std::string("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: ") + name +
            "\nresource:\n  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n"
            "    matchLabels:\n      apps: phi-4\ninference:\n  preset:\n    name: "
            "phi-4-mini-instruct\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string query =
      api +
      "query?query=kaito_grpc_server_handled_total%7Bgrpc_method%3D%22CreateWorkspace%22%2C"
      "grpc_code%3D%22OK%22%7D";
  EXPECT_TRUE(WaitFor(
      [&] {
        json result = Get(query);
        if (!result.is_object() || result["data"]["result"].empty()) return false;
        last = result.dump();
        return result["data"]["result"][0]["value"][1] == "3";
      },
      absl::Seconds(30)))
      << last;
  // The agent's GPU, as its probe reports it (1xA100 with 80 GiB), and healthy.
  json gpu = Get(api + "query?query=kaito_agent_gpu_memory_bytes");
  ASSERT_TRUE(gpu.is_object());
  ASSERT_EQ(gpu["data"]["result"].size(), 1u) << gpu.dump();
  EXPECT_EQ(gpu["data"]["result"][0]["value"][1], "85899345920") << gpu.dump();
  EXPECT_EQ(gpu["data"]["result"][0]["metric"]["job"], "kaito-agent");
  json healthy = Get(api + "query?query=kaito_agent_gpu_healthy");
  ASSERT_TRUE(healthy.is_object());
  EXPECT_EQ(healthy["data"]["result"][0]["value"][1], "1") << healthy.dump();
  // Every daemon says what it is.
  json builds = Get(api + "query?query=kaito_build_info");
  ASSERT_TRUE(builds.is_object());
  EXPECT_EQ(builds["data"]["result"].size(), 4u) << builds.dump();

  prometheus->Stop();
  shim->Stop();
  agent->Stop();
  provisioner->Stop();
  server->daemon.Stop();
}

}  // namespace
}  // namespace kaito::testing
