// The real node agent end to end, as processes on loopback: kaito-server (no dev mode), a
// real kaito-agent with the Docker Engine API runtime on a real Podman service (started by
// the test, with a registry the test image is pulled from), registered as a bring-your-own
// node with a fake GPU, which reaches the container as a CDI device (a CDI spec the test
// writes, of a kind of its own, that sets an environment variable). A Workspace with a custom
// inference template runs a test model server (busybox nc + a shell handler) that answers GET
// /health and POST /chat:
//   - it becomes InferenceReady once /health answers, and POST /chat to status.endpoint
//     gets the model server's answer;
//   - killed from outside, the container is restarted and the workload's status says so;
//   - the agent killed (-9) and started again adopts the running container, untouched;
//   - deleting the workspace removes the container.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/container_engine.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

// One HTTP exchange per connection (nc -ll -e runs it with the socket as stdin and stdout).
constexpr char kHandler[] = R"(#!/bin/sh
cr=$(printf '\r')
read -r method path version
path=${path%"$cr"}
length=0
while IFS= read -r line; do
  line=${line%"$cr"}
  [ -z "$line" ] && break
  case "$line" in
    [Cc]ontent-[Ll]ength:*) length=${line#*:}; length=${length# } ;;
  esac
done
body=""
if [ "$length" -gt 0 ]; then body=$(head -c "$length"); fi
reply() {
  printf 'HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %s\r\nConnection: close\r\n\r\n%s' "$1" "${#2}" "$2"
}
case "$method $path" in
  "GET /health") reply "200 OK" '{"status":"ok"}' ;;
  "POST /chat") reply "200 OK" "{\"Result\":\"model-server heard: $body\",\"gpu\":\"${KAITO_TEST_GPU:-none}\"}" ;;
  *) reply "404 Not Found" '{"error":"no such path"}' ;;
esac
)";

constexpr char kServe[] = R"(#!/bin/sh
echo "model server listening on 5000"
exec nc -ll -p 5000 -e /bin/handle
)";

constexpr char kWorkspace[] = R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: workspace-custom-llm
resource:
  labelSelector:
    matchLabels:
      apps: custom-llm
inference:
  template:
    spec:
      containers:
      - name: custom-llm-container
        image: IMAGE
        command: ["/bin/serve"]
        ports: [{containerPort: 5000}]
        readinessProbe:
          httpGet: {path: /health, port: 5000}
          periodSeconds: 1
          failureThreshold: 3
        resources: {limits: {nvidia.com/gpu: 1}}
        volumeMounts: [{name: dshm, mountPath: /dev/shm}]
      volumes:
      - {name: dshm, emptyDir: {medium: Memory}}
      # nc as PID 1 ignores SIGTERM: the kill comes at the end of the grace period.
      terminationGracePeriodSeconds: 2
)";

std::string Condition(const v1::Workspace& ws, const std::string& type) {
  for (const auto& c : ws.status().conditions()) {
    if (c.type() == type) return c.status();
  }
  return "Unknown";
}

class RealAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The node's "GPU": a CDI device whose only edit is an environment variable. Podman reads
    // CDI specs from /etc/cdi and /var/run/cdi only; the file is this test's own.
    // Its kind is this process's, so that tests running side by side do not define the same
    // device twice (which makes it unresolvable).
    cdi_spec_ = absl::StrCat("/var/run/cdi/kaito-test-", getpid(), ".yaml");
    cdi_kind_ = absl::StrCat("p", getpid(), ".kaito.test/gpu");
    std::filesystem::create_directories("/var/run/cdi");
    {
      std::ofstream spec(cdi_spec_);
      spec << "cdiVersion: \"0.5.0\"\nkind: \"" << cdi_kind_
           << "\"\ndevices:\n- name: \"0\"\n"
              "  containerEdits:\n    env: [\"KAITO_TEST_GPU=attached\"]\n";
      ASSERT_TRUE(spec.good()) << "cannot write " << cdi_spec_;
    }
    auto registry = LocalRegistry::Start(dir_.File("registry"));
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = *std::move(registry);
    auto podman = PodmanService::Start(dir_.File("podman"), {registry_->host()});
    ASSERT_TRUE(podman.ok()) << podman.status();
    podman_ = *std::move(podman);
    image_ = registry_->host() + "/kaito-test/model-server:1";
    absl::Status built = podman_->BuildBusyboxImage(
        "localhost/kaito-test/model-server:1", {{"bin/handle", kHandler}, {"bin/serve", kServe}});
    ASSERT_TRUE(built.ok()) << built;
    absl::Status pushed = podman_->PushAndForget("localhost/kaito-test/model-server:1", image_);
    ASSERT_TRUE(pushed.ok()) << pushed;

    auto server =
        StartServer(dir_.path(), {"--node-lease-ttl", "3s", "--node-heartbeat-interval", "500ms"},
                    /*dev=*/false);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    channel_ = grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials());
    workspaces_ = v1::WorkspaceService::NewStub(channel_);
    nodes_ = v1::NodeService::NewStub(channel_);
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const char* log : {"server.log", "agent.log", "podman/podman-service.log"}) {
        std::cerr << "--- " << log << " ---\n" << ReadFile(dir_.File(log)) << std::endl;
      }
    }
    agent_.Stop();
    podman_.reset();
    std::error_code ec;
    std::filesystem::remove(cdi_spec_, ec);
  }

  void StartAgent() {
    auto agent = Daemon::Start({BinDir() + "/kaito-agent",
                                "--server",
                                server_.address(),
                                "--node-name",
                                "gpu-real-1",
                                "--labels",
                                "apps=custom-llm",
                                "--instance-type",
                                "Standard_NC24ads_A100_v4",
                                "--runtime",
                                "docker",
                                "--docker-host",
                                podman_->docker_host(),
                                "--publish-address",
                                "127.0.0.1",
                                "--gpu-probe",
                                "fake",
                                "--fake-gpus",
                                "1xA100:80:8.0",
                                "--cdi-gpu-kind",
                                cdi_kind_,
                                "--crash-backoff",
                                "1s",
                                "--metrics-listen",
                                "127.0.0.1:0",
                                "--port-file",
                                dir_.File("agent.port"),
                                "--log-level",
                                "debug"},
                               dir_.File("agent.log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agent_ = std::move(*agent);
  }

  std::optional<v1::Workspace> Workspace() {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest req;
    req.set_name("workspace-custom-llm");
    v1::Workspace ws;
    if (!workspaces_->GetWorkspace(&ctx, req, &ws).ok()) return std::nullopt;
    return ws;
  }
  std::vector<v1::Workload> Workloads() {
    grpc::ClientContext ctx;
    v1::ListWorkloadsResponse resp;
    nodes_->ListWorkloads(&ctx, v1::ListRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }
  // Our containers on the engine: "ID STARTED-AT STATE" lines.
  std::vector<std::string> Containers() {
    RunResult r = podman_->Podman({"ps", "--all", "--no-trunc", "--filter",
                                   "label=kaito.sh/managed-by=kaito-agent", "--format",
                                   "{{.ID}} {{.State}}"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  }
  std::string StartedAt(const std::string& id) {
    RunResult r = podman_->Podman({"inspect", "--format", "{{.State.StartedAt}}", id});
    return r.out;
  }
  RunResult Ctl(std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {BinDir() + "/kaitoctl", "--server", server_.address()});
    return RunCommand(args, in);
  }
  // POST /chat to `endpoint` with curl (a real HTTP client on the network path).
  RunResult Chat(const std::string& endpoint) {
    return RunCommand({"/usr/bin/curl", "-sS", "--max-time", "10", "-X", "POST", "-d", "hello",
                       "http://" + endpoint + "/chat"});
  }

  TempDir dir_;
  std::string cdi_spec_;
  std::string cdi_kind_;
  std::unique_ptr<LocalRegistry> registry_;
  std::unique_ptr<PodmanService> podman_;
  std::string image_;
  ServerProcess server_;
  Daemon agent_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> workspaces_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
};

TEST_F(RealAgentTest, ServesRestartsAdoptsAndCleansUp) {
  const absl::Time begun = absl::Now();
  auto phase = [&](const char* what) {
    std::cerr << "[" << absl::FormatDuration(absl::Now() - begun) << "] " << what << std::endl;
  };
  StartAgent();
  // A bring-your-own workspace fails at once when no node matches: the node first.
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::ClientContext ctx;
        v1::ListNodesResponse resp;
        nodes_->ListNodes(&ctx, v1::ListRequest(), &resp);
        for (const auto& n : resp.items()) {
          for (const auto& c : n.status().conditions()) {
            if (c.type() == "Ready" && c.status() == "True") return true;
          }
        }
        return false;
      },
      absl::Seconds(60)))
      << "the agent's node never turned Ready";
  phase("node Ready");
  std::string manifest = kWorkspace;
  manifest.replace(manifest.find("IMAGE"), 5, image_);
  RunResult applied = Ctl({"apply", "-f", "-"}, manifest);
  ASSERT_EQ(applied.exit_code, 0) << applied.err;

  // InferenceReady once /health answers; the endpoint is the published port.
  std::optional<v1::Workspace> ws;
  ASSERT_TRUE(WaitFor(
      [&] {
        ws = Workspace();
        // A failed workspace will not recover: stop waiting.
        return ws &&
               ((Condition(*ws, "InferenceReady") == "True" && !ws->status().endpoint().empty()) ||
                ws->status().state() == "Failed");
      },
      absl::Seconds(90)))
      << (ws ? ws->status().DebugString() : "no workspace");
  ASSERT_NE(ws->status().state(), "Failed") << ws->status().DebugString();
  const std::string endpoint = ws->status().endpoint();
  EXPECT_TRUE(absl::StartsWith(endpoint, "127.0.0.1:")) << endpoint;
  EXPECT_NE(endpoint, "127.0.0.1:5000") << "a published port, not the container's";
  RunResult chat = Chat(endpoint);
  ASSERT_EQ(chat.exit_code, 0) << chat.err;
  // The GPU came as a CDI device (the test's spec sets this variable in the container).
  EXPECT_EQ(chat.out, "{\"Result\":\"model-server heard: hello\",\"gpu\":\"attached\"}");
  // The jsonpath a user would script with names the same endpoint.
  RunResult path =
      Ctl({"get", "workspace", "workspace-custom-llm", "-o", "jsonpath={.status.endpoint}"});
  EXPECT_EQ(path.out, endpoint);

  phase("serving");
  std::vector<std::string> containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  const std::string id = containers[0].substr(0, containers[0].find(' '));

  // Killed behind the agent's back: restarted (after the 1 s back-off), counted, Ready again.
  RunResult killed = podman_->Podman({"kill", id});
  ASSERT_EQ(killed.exit_code, 0) << killed.err;
  std::vector<v1::Workload> workloads;
  ASSERT_TRUE(WaitFor(
      [&] {
        workloads = Workloads();
        return workloads.size() == 1 && workloads[0].status().restarts() == 1 &&
               workloads[0].status().phase() == "Ready";
      },
      absl::Seconds(60)))
      << (workloads.empty() ? "no workload" : workloads[0].status().DebugString());
  ASSERT_TRUE(WaitFor(
      [&] {
        ws = Workspace();
        return ws && Condition(*ws, "InferenceReady") == "True" && !ws->status().endpoint().empty();
      },
      absl::Seconds(30)));
  EXPECT_EQ(Chat(ws->status().endpoint()).exit_code, 0);
  phase("restarted and Ready again");
  // The agent's metrics say what it did: one restart, probes that passed.
  int metrics_port = 0;
  ASSERT_TRUE(WaitForPortFile(dir_.File("agent.port"), &metrics_port, absl::Seconds(10)));
  RunResult metrics = RunCommand(
      {"/usr/bin/curl", "-sS", absl::StrCat("http://127.0.0.1:", metrics_port, "/metrics")});
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  EXPECT_NE(metrics.out.find("kaito_agent_container_restarts_total 1\n"), std::string::npos);
  const std::string count_of_passed =
      "kaito_agent_readiness_probe_duration_seconds_count{result=\"passed\"} ";
  const size_t at = metrics.out.find(count_of_passed);
  ASSERT_NE(at, std::string::npos) << metrics.out;
  double probes = 0;
  ASSERT_TRUE(absl::SimpleAtod(
      metrics.out.substr(at + count_of_passed.size(),
                         metrics.out.find('\n', at) - at - count_of_passed.size()),
      &probes));
  EXPECT_GE(probes, 2) << "probes passed before and after the restart";
  const std::string started = StartedAt(id);

  // The agent killed and started again adopts the container: same id, same start.
  agent_.Kill();
  StartAgent();
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string log = ReadFile(dir_.File("agent.log"));
        workloads = Workloads();
        return log.find("adopt") != std::string::npos && workloads.size() == 1 &&
               workloads[0].status().phase() == "Ready";
      },
      absl::Seconds(30)));
  containers = Containers();
  ASSERT_EQ(containers.size(), 1u);
  EXPECT_EQ(containers[0].substr(0, containers[0].find(' ')), id) << "the same container";
  EXPECT_EQ(StartedAt(id), started) << "not restarted by the new agent";
  EXPECT_EQ(workloads[0].status().restarts(), 1);
  EXPECT_EQ(Chat(ws->status().endpoint()).exit_code, 0);

  phase("adopted");
  // Delete: the container goes.
  RunResult deleted = Ctl({"delete", "workspace", "workspace-custom-llm"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_TRUE(WaitFor([&] { return Containers().empty(); }, absl::Seconds(60)))
      << "left: " << absl::StrJoin(Containers(), "; ");
  phase("deleted");
}

}  // namespace
}  // namespace kaito::testing
