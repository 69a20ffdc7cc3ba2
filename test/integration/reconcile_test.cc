// The seed document's flow end to end, as processes on loopback: kaito-server (dev mode
// with its simulated cloud and agents, or with kaito-provisioner and kaito-agent
// processes), driven by kaitoctl and by gRPC clients; and the faults the issue names:
// an agent killed, the server killed mid-reconcile, a quota error, an agent sending
// garbage. Waiting is on conditions with deadlines; simulated delays are short flags.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/provisioner.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Short simulated delays and leases, so that the flow takes seconds.
const std::vector<std::string> kFast = {
    "--simulated-create-delay", "300ms", "--simulated-delete-delay",  "100ms",
    "--simulated-pull-delay",   "50ms",  "--simulated-start-delay",   "50ms",
    "--simulated-ready-delay",  "100ms", "--simulated-job-duration",  "500ms",
    "--claim-poll-interval",    "100ms", "--claim-retry-base",        "200ms",
    "--node-lease-ttl",         "2s",    "--node-heartbeat-interval", "500ms",
    "--node-lost-grace",        "1s"};

std::string Example(const std::string& name) {
  return Env("KAITO_SOURCE_DIR") + "/examples/" + name;
}

std::string Condition(const v1::Workspace& ws, const std::string& type) {
  for (const auto& c : ws.status().conditions()) {
    if (c.type() == type) return c.status();
  }
  return "Unknown";
}

const v1::Condition* FindCondition(const v1::Workspace& ws, const std::string& type) {
  for (const auto& c : ws.status().conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

class Client {
 public:
  explicit Client(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        workspaces_(v1::WorkspaceService::NewStub(channel_)),
        nodes_(v1::NodeService::NewStub(channel_)),
        cloud_(v1::SimulatedCloudService::NewStub(channel_)) {}

  std::optional<v1::Workspace> Workspace(const std::string& name) {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest req;
    req.set_name(name);
    v1::Workspace ws;
    if (!workspaces_->GetWorkspace(&ctx, req, &ws).ok()) return std::nullopt;
    return ws;
  }

  std::vector<v1::NodeClaim> Claims() {
    grpc::ClientContext ctx;
    v1::ListNodeClaimsResponse resp;
    nodes_->ListNodeClaims(&ctx, v1::ListRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }
  std::vector<v1::Workload> Workloads() {
    grpc::ClientContext ctx;
    v1::ListWorkloadsResponse resp;
    nodes_->ListWorkloads(&ctx, v1::ListRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }
  std::vector<v1::Node> Nodes() {
    grpc::ClientContext ctx;
    v1::ListNodesResponse resp;
    nodes_->ListNodes(&ctx, v1::ListRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }
  std::optional<v1::Node> Node(const std::string& name) {
    for (auto& n : Nodes()) {
      if (n.metadata().name() == name) return n;
    }
    return std::nullopt;
  }
  grpc::Status SetFaults(const std::vector<v1::SimulatedFault>& faults) {
    grpc::ClientContext ctx;
    v1::SetFaultsRequest req;
    for (const auto& f : faults) *req.add_faults() = f;
    v1::SetFaultsResponse resp;
    return cloud_->SetFaults(&ctx, req, &resp);
  }
  v1::NodeService::Stub* nodes() { return nodes_.get(); }

  // Waits until the workspace satisfies `pred`; on timeout, fails with its status.
  v1::Workspace WaitWorkspace(const std::string& name,
                              const std::function<bool(const v1::Workspace&)>& pred,
                              absl::Duration deadline = absl::Seconds(30)) {
    std::optional<v1::Workspace> last;
    bool ok = WaitFor(
        [&] {
          last = Workspace(name);
          return last && pred(*last);
        },
        deadline);
    EXPECT_TRUE(ok) << "workspace " << name << " is "
                    << (last ? last->status().DebugString() : std::string("missing"));
    return last.value_or(v1::Workspace());
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> workspaces_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
  std::unique_ptr<v1::SimulatedCloudService::Stub> cloud_;
};

class ReconcileTest : public ::testing::Test {
 protected:
  void StartDev(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = kFast;
    flags.insert(flags.end(), extra.begin(), extra.end());
    auto server = StartServer(dir_.path(), flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    client_ = std::make_unique<Client>(server_.address());
  }

  RunResult Ctl(std::vector<std::string> args, const std::string& in = "") {
    args.insert(args.begin(), {BinDir() + "/kaitoctl", "--server", server_.address()});
    return RunCommand(args, in);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- server log ---\n" << ReadFile(dir_.File("server.log")) << std::endl;
    }
  }

  TempDir dir_;
  ServerProcess server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ReconcileTest, SeedFlowInDevModeServesTunesAndCleansUp) {
  StartDev();
  RunResult r = Ctl({"apply", "-f", Example("inference-phi-3.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"apply", "-f", Example("tuning-phi-3.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  v1::Workspace inference = client_->WaitWorkspace("workspace-phi-3-mini", [](const auto& ws) {
    return Condition(ws, "WorkspaceReady") == "True";
  });
  EXPECT_EQ(inference.status().state(), "Ready");
  EXPECT_EQ(Condition(inference, "ResourceReady"), "True");
  EXPECT_EQ(Condition(inference, "InferenceReady"), "True");
  EXPECT_EQ(Condition(inference, "NodeClaimReady"), "True");
  EXPECT_EQ(Condition(inference, "WorkspaceSucceeded"), "True");
  EXPECT_EQ(inference.status().target_node_count(), 1);
  EXPECT_EQ(inference.status().worker_nodes_size(), 1);
  EXPECT_THAT(inference.status().endpoint(), HasSubstr(":5000"));

  v1::Workspace tuning = client_->WaitWorkspace(
      "workspace-tuning-phi-3", [](const auto& ws) { return ws.status().state() == "Succeeded"; });
  EXPECT_EQ(Condition(tuning, "JobStarted"), "True");
  EXPECT_EQ(Condition(tuning, "WorkspaceSucceeded"), "True");
  EXPECT_EQ(Condition(tuning, "InferenceReady"), "Unknown");

  r = Ctl({"get", "workspaces"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("workspace-phi-3-mini"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("workspace-phi-3-mini +Standard_NC24ads_A100_v4 +"
                                              "True +True +True"));
  r = Ctl({"describe", "workspace", "workspace-phi-3-mini"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("NodeClaimCreated"));
  EXPECT_THAT(r.out, HasSubstr("WorkloadStarted"));
  EXPECT_THAT(r.out, HasSubstr("WorkspaceReady"));

  // Two claims, two nodes, two workloads; the nodes carry the workspace's labels.
  EXPECT_EQ(client_->Claims().size(), 2u);
  EXPECT_EQ(client_->Workloads().size(), 2u);
  auto nodes = client_->Nodes();
  ASSERT_EQ(nodes.size(), 2u);
  for (const auto& n : nodes) {
    EXPECT_EQ(n.metadata().labels().count("kaito.sh/workspace"), 1u);
    EXPECT_GE(n.status().gpus_size(), 1) << "GPUs of the instance type, from the SKU catalog";
  }

  // What the fleet looks like to Prometheus now.
  const int metrics_port = MetricsPortFromLog(dir_.File("server.log"));
  ASSERT_GT(metrics_port, 0);
  RunResult scraped = RunCommand(
      {"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"});
  ASSERT_EQ(scraped.exit_code, 0);
  const std::string& m = scraped.out;
  EXPECT_THAT(m, HasSubstr("kaito_workspace_ready_seconds_count{kind=\"inference\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("kaito_workspace_ready_seconds_count{kind=\"tuning\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("kaito_nodes{state=\"Ready\"} 2\n"));
  EXPECT_THAT(m, HasSubstr("kaito_nodeclaims{phase=\"Ready\"} 2\n"));
  EXPECT_THAT(m, HasSubstr("kaito_agent_sessions_connected 2\n"));
  EXPECT_THAT(m,
              ::testing::ContainsRegex("kaito_gpus\\{healthy=\"true\",model=\"[^\"]+\"\\} [1-9]"));
  EXPECT_THAT(m, HasSubstr("kaito_grpc_server_started_total{grpc_method=\"Connect\",grpc_service="
                           "\"kaito.v1.NodeService\",grpc_type=\"bidi_stream\"} 2\n"));
  EXPECT_THAT(m, ::testing::ContainsRegex("kaito_store_commit_duration_seconds_count [1-9]"));
  EXPECT_THAT(m, ::testing::ContainsRegex("kaito_store_commit_batch_writes_count [1-9]"));

  for (const char* name : {"workspace-phi-3-mini", "workspace-tuning-phi-3"}) {
    r = Ctl({"delete", "workspace", name, "--wait"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_FALSE(client_->Workspace("workspace-phi-3-mini"));
  EXPECT_TRUE(client_->Claims().empty());
  EXPECT_TRUE(client_->Workloads().empty());
  EXPECT_TRUE(WaitFor([&] { return client_->Nodes().empty(); }, absl::Seconds(10)))
      << client_->Nodes().size() << " nodes left";
}

// A Secret's value never appears anywhere a user or an operator can read, whatever the
// path: the server at trace level (dev mode: its simulated agents and runtime log into the
// same file) through a Secret's create, a tuning workspace that pushes with it until it
// Succeeds, a refused update of the Secret and a bad reference to it; then the log, every
// event, every object's status, the metrics and the error messages are searched.
TEST_F(ReconcileTest, ASecretValueNeverReachesALogAnEventAStatusOrAMetric) {
  StartDev({"--log-level", "trace"});
  const std::string value = "s3cr3t-Vh7Q-push-token";
  // Only what is base64 of the value travels in a manifest; search for both.
  const std::string encoded = "czNjcjN0LVZoN1EtcHVzaC10b2tlbg==";
  RunResult r = Ctl({"apply", "-f", "-"},
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: acr-registry-secret\n"
                    "type: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: "
                    "'{\"auths\":{\"myregistry.azurecr.io\":{\"auth\":\"" +
                        value + "\"}}}'\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Ctl({"apply", "-f", Example("tuning-phi-3.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  client_->WaitWorkspace("workspace-tuning-phi-3",
                         [](const auto& ws) { return ws.status().state() == "Succeeded"; });
  // Error paths: a Secret whose data is not valid, and a workspace naming a missing secret.
  RunResult bad = Ctl({"apply", "-f", "-"},
                      "apiVersion: v1\nkind: Secret\nmetadata:\n  name: acr-registry-secret\n"
                      "data:\n  token: '" +
                          value + "'\n");
  EXPECT_NE(bad.exit_code, 0) << "not base64";
  std::string missing = ReadFile(Example("tuning-phi-3.yaml"));
  missing.replace(missing.find("workspace-tuning-phi-3"), 22, "workspace-tuning-other");
  missing.replace(missing.find("acr-registry-secret"), 19, value.substr(0, 6) + "-missing");
  RunResult other = Ctl({"apply", "-f", "-"}, missing);

  std::vector<std::pair<std::string, std::string>> places = {
      {"the server's log", ReadFile(dir_.File("server.log"))},
      {"a refused apply", bad.out + bad.err},
      {"another apply", other.out + other.err},
  };
  for (const std::vector<std::string>& get :
       {std::vector<std::string>{"get", "events", "-A", "-o", "yaml"},
        {"get", "workspaces", "-A", "-o", "yaml"},
        {"get", "secrets", "-A", "-o", "yaml"},
        {"get", "nodes", "-o", "yaml"},
        {"get", "nodeclaims", "-o", "yaml"},
        {"get", "workloads", "-A", "-o", "yaml"},
        {"describe", "workspace", "workspace-tuning-phi-3"}}) {
    RunResult got = Ctl(get);
    EXPECT_EQ(got.exit_code, 0) << got.err;
    places.push_back({absl::StrJoin(get, " "), got.out + got.err});
  }
  const int metrics_port = MetricsPortFromLog(dir_.File("server.log"));
  ASSERT_GT(metrics_port, 0);
  places.push_back(
      {"/metrics", RunCommand({"/usr/bin/curl", "-sf",
                               "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"})
                       .out});
  // The paths ran: the log is the verbose one of the whole flow, and the workload that pushed
  // mounted the secret (by name: its value travels only to the runtime).
  ASSERT_THAT(places[0].second, HasSubstr(" D kaito-server workspace default/"
                                          "workspace-tuning-phi-3: event Normal TuningSucceeded"));
  ASSERT_THAT(places[8].second, HasSubstr("acr-registry-secret")) << places[8].first;
  for (const auto& [where, text] : places) {
    EXPECT_THAT(text, Not(HasSubstr(value))) << where;
    EXPECT_THAT(text, Not(HasSubstr(encoded))) << where;
  }
}

// In --log-format json every line about a workspace or one of its objects says which, in
// fields of its own: the node claims' lines (the claim's name is a hash), the simulated
// cloud's, the agents' workload lines and the events'.
TEST_F(ReconcileTest, JsonLogLinesNameTheirWorkspace) {
  StartDev({"--log-format", "json", "--log-level", "debug"});
  RunResult r = Ctl({"apply", "-f", Example("inference-phi-3.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  client_->WaitWorkspace("workspace-phi-3-mini",
                         [](const auto& ws) { return Condition(ws, "WorkspaceReady") == "True"; });
  r = Ctl({"delete", "workspace", "workspace-phi-3-mini", "--wait"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::map<std::string, int> lines_about;  // By the kind of object ("" for the workspace).
  const std::vector<std::string> lines =
      absl::StrSplit(ReadFile(dir_.File("server.log")), '\n', absl::SkipEmpty());
  for (const std::string& line : lines) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "not one JSON object: " << line;
    const std::string msg = j.value("msg", "");
    const std::string object = j.value("object", "");
    if (j.contains("workspace")) {
      EXPECT_EQ(j.value("namespace", ""), "default") << line;
      EXPECT_EQ(j.value("workspace", ""), "workspace-phi-3-mini") << line;
      ++lines_about[object.substr(0, object.find('/'))];
    } else {
      EXPECT_THAT(msg, Not(HasSubstr("workspace-phi-3-mini"))) << "names no workspace: " << line;
      EXPECT_THAT(object, Not(HasSubstr("nodeclaim/"))) << line;
    }
  }
  EXPECT_GT(lines_about[""], 0) << "the workspace's events";
  EXPECT_GT(lines_about["nodeclaim"], 0) << "its claim: events and the simulated cloud";
  EXPECT_GT(lines_about["workload"], 0) << "its workload, on the simulated agent";
}

TEST_F(ReconcileTest, MultiNodePresetGetsALeaderAndAWorker) {
  StartDev();
  RunResult r = Ctl({"apply", "-f", Example("inference-llama-3.3-70b-multinode.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::Workspace ws = client_->WaitWorkspace("workspace-llama-3-3-70b-instruct", [](const auto& ws) {
    return Condition(ws, "WorkspaceReady") == "True";
  });
  EXPECT_EQ(ws.status().target_node_count(), 2);
  EXPECT_EQ(ws.status().worker_nodes_size(), 2);
  std::multiset<std::string> roles;
  std::set<std::string> nodes;
  for (const auto& w : client_->Workloads()) {
    roles.insert(w.spec().role());
    nodes.insert(w.spec().node_name());
    EXPECT_EQ(w.status().phase(), "Ready");
  }
  EXPECT_EQ(roles, (std::multiset<std::string>{"leader", "worker"}));
  EXPECT_EQ(nodes.size(), 2u) << "one workload per node";
  EXPECT_EQ(client_->Claims().size(), 2u);
}

TEST_F(ReconcileTest, QuotaErrorIsRetriedThenFailedThenRecoversOnReapply) {
  StartDev({"--simulated-fault", "Standard_NC24ads_A100_v4=QuotaExceeded:retryable",
            "--claim-max-attempts", "2"});
  RunResult r = Ctl({"apply", "-f", Example("inference-phi-3.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string name = "workspace-phi-3-mini";
  v1::Workspace ws = client_->WaitWorkspace(name, [](const auto& ws) {
    const v1::Condition* c = FindCondition(ws, "ResourceReady");
    return c != nullptr && c->status() == "False" && c->reason() == "QuotaExceeded";
  });
  ws = client_->WaitWorkspace(name, [](const auto& ws) { return ws.status().state() == "Failed"; });
  const v1::Condition* resource = FindCondition(ws, "ResourceReady");
  ASSERT_NE(resource, nullptr);
  EXPECT_EQ(resource->reason(), "QuotaExceeded");
  EXPECT_THAT(resource->message(), HasSubstr("quota"));
  EXPECT_THAT(resource->message(), HasSubstr("2 attempts"));
  EXPECT_EQ(Condition(ws, "WorkspaceSucceeded"), "False");
  r = Ctl({"describe", "workspace", name});
  EXPECT_THAT(r.out, HasSubstr("NodeClaimFailed"));

  // Lift the quota and apply the same manifest again: it finishes.
  ASSERT_TRUE(client_->SetFaults({}).ok());
  r = Ctl({"apply", "-f", Example("inference-phi-3.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("configured"));
  client_->WaitWorkspace(name, [](const auto& ws) { return ws.status().state() == "Ready"; });
  EXPECT_EQ(client_->Claims().size(), 1u) << "the failed claim was replaced, not kept";
}

TEST_F(ReconcileTest, AgentSendingGarbageIsRejectedAndNothingChanges) {
  StartDev();
  auto channel = grpc::CreateChannel(server_.address(), grpc::InsecureChannelCredentials());
  auto stub = v1::NodeService::NewStub(channel);
  {
    // A heartbeat before any Hello breaks the protocol.
    grpc::ClientContext ctx;
    auto stream = stub->Connect(&ctx);
    v1::AgentMessage m;
    m.mutable_heartbeat()->set_sequence(1);
    ASSERT_TRUE(stream->Write(m));
    v1::ServerMessage reply;
    EXPECT_FALSE(stream->Read(&reply));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("Hello"));
  }
  {
    // A Hello with a bad node name.
    grpc::ClientContext ctx;
    auto stream = stub->Connect(&ctx);
    v1::AgentMessage m;
    m.mutable_hello()->set_node_name("Not_A_Name");
    ASSERT_TRUE(stream->Write(m));
    v1::ServerMessage reply;
    EXPECT_FALSE(stream->Read(&reply));
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("hello.nodeName"));
  }
  EXPECT_TRUE(client_->Nodes().empty()) << "a rejected Hello registers nothing";

  // A real workspace, so that there is a workload some other node runs.
  ASSERT_EQ(Ctl({"apply", "-f", Example("inference-phi-3.yaml")}).exit_code, 0);
  client_->WaitWorkspace("workspace-phi-3-mini",
                         [](const auto& ws) { return ws.status().state() == "Ready"; });
  auto workloads = client_->Workloads();
  ASSERT_EQ(workloads.size(), 1u);
  const v1::Workload before = workloads[0];

  // An intruder node reports that workload failed: rejected, the session survives.
  grpc::ClientContext ctx;
  auto stream = stub->Connect(&ctx);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_node_name("intruder");
  ASSERT_TRUE(stream->Write(hello));
  v1::ServerMessage reply;
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_TRUE(reply.has_welcome());
  v1::AgentMessage report;
  report.mutable_workload()->set_namespace_(before.metadata().namespace_());
  report.mutable_workload()->set_name(before.metadata().name());
  report.mutable_workload()->set_uid(before.metadata().uid());
  report.mutable_workload()->mutable_status()->set_phase("Failed");
  ASSERT_TRUE(stream->Write(report));
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->set_sequence(2);
  ASSERT_TRUE(stream->Write(heartbeat));
  // The intruder's (empty) desired set arrives: the session is alive after the report.
  ASSERT_TRUE(stream->Read(&reply));
  EXPECT_TRUE(reply.has_desired());
  EXPECT_EQ(reply.desired().workloads_size(), 0);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  auto after = client_->Workloads();
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].status().phase(), "Ready");
  EXPECT_EQ(after[0].metadata().resource_version(), before.metadata().resource_version());
  EXPECT_EQ(client_->Workspace("workspace-phi-3-mini")->status().state(), "Ready");
}

// Bring-your-own nodes run by kaito-agent processes: kill -9 the agent of the node that
// serves; the node goes NotReady within the lease, and after the grace period the
// workload moves to the other node; it never runs on both.
TEST_F(ReconcileTest, KilledAgentsNodeGoesNotReadyAndItsWorkloadMoves) {
  auto server = StartServer(
      dir_.path(),
      {"--node-lease-ttl", "2s", "--node-heartbeat-interval", "500ms", "--node-lost-grace", "1s"},
      /*dev=*/false);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(*server);
  client_ = std::make_unique<Client>(server_.address());

  std::map<std::string, Daemon> agents;
  for (const std::string node : {"gpu-a", "gpu-b"}) {
    auto agent = Daemon::Start({BinDir() + "/kaito-agent",
                                "--server",
                                server_.address(),
                                "--node-name",
                                node,
                                "--labels",
                                "apps=phi-3",
                                "--instance-type",
                                "Standard_NC24ads_A100_v4",
                                "--runtime",
                                "simulated",
                                "--gpu-probe",
                                "fake",
                                "--fake-gpus",
                                "1xA100:80:8.0",
                                "--metrics-listen",
                                "127.0.0.1:0",
                                "--simulated-pull-delay",
                                "50ms",
                                "--simulated-start-delay",
                                "50ms",
                                "--simulated-ready-delay",
                                "100ms"},
                               dir_.File(node + ".log"));
    ASSERT_TRUE(agent.ok()) << agent.status();
    agents.emplace(node, std::move(*agent));
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        int ready = 0;
        for (const auto& n : client_->Nodes()) {
          for (const auto& c : n.status().conditions()) {
            ready += c.type() == "Ready" && c.status() == "True";
          }
        }
        return ready == 2;
      },
      absl::Seconds(20)));
  std::string byo = ReadFile(Example("inference-phi-3.yaml"));
  byo.replace(byo.find("  instanceType: \"Standard_NC24ads_A100_v4\"\n"),
              std::string("  instanceType: \"Standard_NC24ads_A100_v4\"\n").size(), "");
  RunResult r = Ctl({"apply", "-f", "-"}, byo);
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  v1::Workspace ws = client_->WaitWorkspace(
      "workspace-phi-3-mini", [](const auto& ws) { return ws.status().state() == "Ready"; });
  ASSERT_EQ(ws.status().worker_nodes_size(), 1);
  const std::string serving = ws.status().worker_nodes(0);
  const std::string other = serving == "gpu-a" ? "gpu-b" : "gpu-a";

  const absl::Time killed = absl::Now();
  agents.at(serving).Kill();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto n = client_->Node(serving);
        return n && !n->status().conditions().empty() &&
               n->status().conditions(0).status() == "False";
      },
      absl::Seconds(10)));
  const absl::Duration detected = absl::Now() - killed;
  EXPECT_LE(detected, absl::Seconds(2) + absl::Milliseconds(500) + absl::Seconds(1))
      << "NotReady within the lease TTL plus one heartbeat (and scheduling slack)";

  ws = client_->WaitWorkspace("workspace-phi-3-mini", [&](const auto& ws) {
    return ws.status().state() == "Ready" && ws.status().worker_nodes_size() == 1 &&
           ws.status().worker_nodes(0) == other;
  });
  auto workloads = client_->Workloads();
  ASSERT_EQ(workloads.size(), 1u) << "the workload runs once";
  EXPECT_EQ(workloads[0].spec().node_name(), other);
  auto lost = client_->Node(serving);
  ASSERT_TRUE(lost);
  EXPECT_EQ(lost->status().conditions(0).reason(), "NodeLost");
  for (auto& [n, a] : agents) a.Stop();
}

// kaito-server killed while it reconciles, with kaito-provisioner as its own process:
// after a restart on the same address it converges with no duplicate machines; killed
// again once serving, it restarts nothing.
TEST_F(ReconcileTest, ServerKilledMidReconcileConvergesWithoutDuplicates) {
  const std::string prov_port_file = dir_.File("prov.port");
  auto provisioner =
      Daemon::Start({BinDir() + "/kaito-provisioner", "--provider", "simulated", "--listen",
                     "127.0.0.1:0", "--port-file", prov_port_file, "--metrics-listen",
                     "127.0.0.1:0", "--simulated-create-delay", "1s", "--simulated-pull-delay",
                     "50ms", "--simulated-start-delay", "50ms", "--simulated-ready-delay", "100ms"},
                    dir_.File("provisioner.log"));
  ASSERT_TRUE(provisioner.ok()) << provisioner.status();
  int prov_port = 0;
  ASSERT_TRUE(WaitForPortFile(prov_port_file, &prov_port, absl::Seconds(20)))
      << ReadFile(dir_.File("provisioner.log"));
  const std::string prov_address = "127.0.0.1:" + std::to_string(prov_port);
  const std::string port_file = dir_.File("port");
  auto start_server = [&](const std::string& listen) {
    std::filesystem::remove(port_file);
    auto daemon = Daemon::Start({BinDir() + "/kaito-server", "--listen", listen, "--metrics-listen",
                                 "", "--data-dir", dir_.path(), "--port-file", port_file,
                                 "--provisioner", prov_address, "--claim-poll-interval", "100ms",
                                 "--node-lease-ttl", "3s", "--node-heartbeat-interval", "500ms"},
                                dir_.File("server.log"));
    EXPECT_TRUE(daemon.ok());
    server_.daemon = std::move(*daemon);
    EXPECT_TRUE(WaitForPortFile(port_file, &server_.port, absl::Seconds(20)));
    client_ = std::make_unique<Client>(server_.address());
  };
  start_server("127.0.0.1:0");
  const std::string listen = server_.address();
  RunResult r = Ctl({"apply", "-f", Example("inference-llama-3.3-70b-multinode.yaml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Kill it as soon as the first claim exists (the machines are still being created).
  ASSERT_TRUE(WaitFor([&] { return !client_->Claims().empty(); }, absl::Seconds(20)));
  server_.daemon.Kill();
  start_server(listen);
  const std::string name = "workspace-llama-3-3-70b-instruct";
  client_->WaitWorkspace(
      name, [](const auto& ws) { return ws.status().state() == "Ready"; }, absl::Seconds(40));
  auto prov = v1::ProvisionerService::NewStub(
      grpc::CreateChannel(prov_address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::ListProvisionedNodesResponse machines;
  ASSERT_TRUE(prov->ListNodes(&ctx, v1::ListProvisionedNodesRequest(), &machines).ok());
  EXPECT_EQ(machines.nodes_size(), 2) << "no duplicate machines";
  EXPECT_EQ(client_->Claims().size(), 2u);
  auto before = client_->Workloads();
  ASSERT_EQ(before.size(), 2u);

  // Killed once serving: after the restart the same workloads run, none restarted.
  server_.daemon.Kill();
  start_server(listen);
  client_->WaitWorkspace(name, [](const auto& ws) { return ws.status().state() == "Ready"; });
  ASSERT_TRUE(WaitFor([&] { return client_->Nodes().size() == 2; }, absl::Seconds(10)));
  auto after = client_->Workloads();
  ASSERT_EQ(after.size(), 2u);
  std::map<std::string, v1::Workload> by_name;
  for (auto& w : after) by_name[w.metadata().name()] = w;
  for (const auto& w : before) {
    const v1::Workload& now = by_name[w.metadata().name()];
    EXPECT_EQ(now.metadata().uid(), w.metadata().uid()) << "not recreated";
    EXPECT_EQ(now.status().restarts(), 0);
    EXPECT_EQ(now.status().start_time().seconds(), w.status().start_time().seconds())
        << "not restarted";
  }
  provisioner->Stop();
}

}  // namespace
}  // namespace kaito::testing
