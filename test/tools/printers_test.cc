#include "tools/kaitoctl/printers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace kaito::ctl {
namespace {

v1::Workspace Sample() {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name("workspace-phi-4");
  ws.mutable_metadata()->set_namespace_("default");
  ws.mutable_metadata()->mutable_creation_timestamp()->set_seconds(1000);
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  return ws;
}

TEST(PrintersTest, PlanShowsTheQuotaHeadroom) {
  v1::WorkspacePlan plan;
  plan.set_instance_type("Standard_NC24ads_A100_v4");
  EXPECT_FALSE(absl::StrContains(FormatPlan(plan), "quota")) << "no provisioner: no line";
  v1::QuotaHeadroom* q = plan.mutable_quota();
  q->set_nodes(2);
  q->set_vcpus_per_node(24);
  q->set_message("the simulated provider keeps no quota");
  EXPECT_THAT(
      FormatPlan(plan),
      ::testing::HasSubstr("quota:            unknown (the simulated provider keeps no quota)"));
  q->set_known(true);
  q->set_family("standardNCADSA100v4Family");
  q->set_family_limit(48);
  q->set_family_used(24);
  q->set_regional_limit(-1);
  q->set_fits(false);
  EXPECT_EQ(FormatQuota(*q),
            "standardNCADSA100v4Family 24 of 48 vCPUs in use (24 free); 2 nodes x 24 vCPUs do NOT "
            "fit (raise the quota, or allow other instance types with "
            "kaito.sh/instance-type-fallback)");
  q->set_nodes(1);
  q->set_regional_limit(350);
  q->set_regional_used(400);
  q->set_fits(true);
  EXPECT_EQ(FormatQuota(*q),
            "standardNCADSA100v4Family 24 of 48 vCPUs in use (24 free), regional 400 of 350 vCPUs "
            "in use (0 free); 1 node x 24 vCPUs fit");
}

TEST(PrintersTest, UnknownUntilConditionIsSet) {
  v1::Workspace ws = Sample();
  auto row = WorkspaceRow(ws, absl::FromUnixSeconds(1042), false, false);
  EXPECT_EQ(row, (std::vector<std::string>{"workspace-phi-4", "Standard_NC24ads_A100_v4", "Unknown",
                                           "Unknown", "Unknown", "42s"}));
  auto* c = ws.mutable_status()->add_conditions();
  c->set_type("ResourceReady");
  c->set_status("True");
  auto* s = ws.mutable_status()->add_conditions();
  s->set_type("WorkspaceSucceeded");
  s->set_status("False");
  row = WorkspaceRow(ws, absl::FromUnixSeconds(1042), false, false);
  EXPECT_EQ(row[2], "True");
  EXPECT_EQ(row[3], "Unknown");
  EXPECT_EQ(row[4], "False") << "WORKSPACEREADY falls back to WorkspaceSucceeded";
}

TEST(PrintersTest, HeadersMatchTheSeedDocument) {
  EXPECT_EQ(WorkspaceHeaders(false, false),
            (std::vector<std::string>{"NAME", "INSTANCE", "RESOURCEREADY", "INFERENCEREADY",
                                      "WORKSPACEREADY", "AGE"}));
  auto wide = WorkspaceHeaders(true, true);
  EXPECT_EQ(wide.front(), "NAMESPACE");
  EXPECT_EQ(wide.size(), 13u);
  EXPECT_EQ(wide[6], "JOBSTARTED");
}

TEST(PrintersTest, WorkspaceWideTableEndsWithEndpoint) {
  EXPECT_EQ(WorkspaceHeaders(true, false),
            (std::vector<std::string>{"NAME", "INSTANCE", "RESOURCEREADY", "INFERENCEREADY",
                                      "WORKSPACEREADY", "JOBSTARTED", "WORKSPACESUCCEEDED",
                                      "TARGETNODES", "STATE", "NODES", "AGE", "ENDPOINT"}));
  v1::Workspace ws = Sample();
  const absl::Time now = absl::FromUnixSeconds(1042);
  EXPECT_EQ(WorkspaceRow(ws, now, true, false).back(), "<none>");
  ws.mutable_status()->set_endpoint("10.0.0.4:5000");
  ws.mutable_status()->add_worker_nodes("node-a");
  ws.mutable_status()->set_target_node_count(1);
  ws.mutable_status()->set_state("Ready");
  EXPECT_EQ(WorkspaceRow(ws, now, true, false),
            (std::vector<std::string>{"workspace-phi-4", "Standard_NC24ads_A100_v4", "Unknown",
                                      "Unknown", "Unknown", "Unknown", "Unknown", "1", "Ready",
                                      "node-a", "42s", "10.0.0.4:5000"}));
  EXPECT_EQ(WorkspaceRow(ws, now, false, false).size(), 6u) << "ENDPOINT is wide only";
}

TEST(PrintersTest, TableIsAligned) {
  EXPECT_EQ(FormatTable({{"NAME", "AGE"}, {"a-long-name", "1s"}}),
            "NAME          AGE\na-long-name   1s\n");
}

TEST(PrintersTest, HumanAgeLikeKubectl) {
  EXPECT_EQ(HumanAge(absl::Seconds(5)), "5s");
  EXPECT_EQ(HumanAge(absl::Seconds(119)), "119s");
  EXPECT_EQ(HumanAge(absl::Seconds(310)), "5m10s");
  EXPECT_EQ(HumanAge(absl::Minutes(45)), "45m");
  EXPECT_EQ(HumanAge(absl::Minutes(200)), "3h20m");
  EXPECT_EQ(HumanAge(absl::Hours(20)), "20h");
  EXPECT_EQ(HumanAge(absl::Hours(76)), "3d4h");
  EXPECT_EQ(HumanAge(absl::Hours(24 * 12)), "12d");
  EXPECT_EQ(HumanAge(absl::Hours(24 * 800)), "2y");
  EXPECT_EQ(HumanAge(absl::Seconds(-3)), "0s");
}

TEST(PrintersTest, DescribeShowsSpecAndConditions) {
  v1::Workspace ws = Sample();
  auto* c = ws.mutable_status()->add_conditions();
  c->set_type("ResourceReady");
  c->set_status("False");
  c->set_reason("NodeClaimNotReady");
  c->set_message("waiting for 1 node");
  std::string text = DescribeWorkspace(ws, absl::FromUnixSeconds(2000));
  EXPECT_THAT(text, ::testing::ContainsRegex("^Name: +workspace-phi-4\n"));
  EXPECT_NE(text.find("instanceType: Standard_NC24ads_A100_v4"), std::string::npos) << text;
  EXPECT_NE(text.find("NodeClaimNotReady"), std::string::npos) << text;
  EXPECT_NE(text.find("waiting for 1 node"), std::string::npos) << text;
}

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds);
  return ts;
}

void AddCondition(google::protobuf::RepeatedPtrField<v1::Condition>* conditions,
                  const std::string& type, const std::string& status, const std::string& reason,
                  const std::string& message, int64_t at) {
  v1::Condition* c = conditions->Add();
  c->set_type(type);
  c->set_status(status);
  c->set_reason(reason);
  c->set_message(message);
  *c->mutable_last_transition_time() = At(at);
}

constexpr int64_t kNow = 2000;  // 1000 s after the objects' creation: age "16m".

v1::Node GpuNode() {
  v1::Node node;
  node.mutable_metadata()->set_name("aks-ws-0");
  *node.mutable_metadata()->mutable_creation_timestamp() = At(1000);
  node.mutable_spec()->set_instance_type("Standard_NC48ads_A100_v4");
  node.mutable_spec()->set_node_claim("ws-abcde");
  node.mutable_status()->set_address("10.0.0.4");
  node.mutable_status()->set_agent_version("0.1.0");
  for (int i = 0; i < 2; ++i) {
    v1::GpuInfo* gpu = node.mutable_status()->add_gpus();
    gpu->set_uuid("GPU-" + std::to_string(i));
    gpu->set_model("A100");
    gpu->set_memory_bytes(int64_t{80} << 30);
    gpu->set_healthy(true);
  }
  AddCondition(node.mutable_status()->mutable_conditions(), "Ready", "True", "AgentConnected",
               "lease held", 1500);
  return node;
}

const std::string kQuotaMessage =
    "Operation could not be completed as it results in exceeding approved "
    "standardNCADSA100v4Family Cores quota.";

v1::NodeClaim FailedClaim() {
  v1::NodeClaim claim;
  claim.mutable_metadata()->set_name("ws-fghij");
  *claim.mutable_metadata()->mutable_creation_timestamp() = At(1000);
  (*claim.mutable_metadata()->mutable_labels())["kaito.sh/workspace"] = "workspace-phi-4";
  (*claim.mutable_metadata()->mutable_labels())["kaito.sh/workspacenamespace"] = "default";
  claim.mutable_spec()->set_instance_type("Standard_NC24ads_A100_v4");
  claim.mutable_status()->set_phase("Failed");
  claim.mutable_status()->set_attempts(3);
  claim.mutable_status()->set_error_code("QuotaExceeded");
  claim.mutable_status()->set_message(kQuotaMessage);
  return claim;
}

v1::Workload RunningWorkload() {
  v1::Workload w;
  w.mutable_metadata()->set_name("workspace-phi-4-0");
  w.mutable_metadata()->set_namespace_("default");
  *w.mutable_metadata()->mutable_creation_timestamp() = At(1000);
  w.mutable_spec()->set_role("inference");
  w.mutable_spec()->set_node_name("aks-ws-0");
  w.mutable_status()->set_phase("Ready");
  w.mutable_status()->set_restarts(2);
  w.mutable_status()->set_endpoint("10.0.0.4:5000");
  return w;
}

v1::Event MakeEvent(const std::string& kind, const std::string& name, const std::string& type,
                    const std::string& reason, const std::string& message, int count, int64_t first,
                    int64_t last) {
  v1::Event e;
  e.mutable_involved_object()->set_kind(kind);
  e.mutable_involved_object()->set_name(name);
  e.set_type(type);
  e.set_reason(reason);
  e.set_message(message);
  e.set_count(count);
  *e.mutable_first_timestamp() = At(first);
  *e.mutable_last_timestamp() = At(last);
  e.set_source(kind == "Workspace" ? "workspace-controller" : "nodeclaim-controller");
  return e;
}

TEST(PrintersTest, NodeTableShowsReadinessAndGpus) {
  const absl::Time now = absl::FromUnixSeconds(kNow);
  EXPECT_EQ(NodeHeaders(false),
            (std::vector<std::string>{"NAME", "STATUS", "INSTANCE", "GPUS", "GPU", "AGE"}));
  EXPECT_EQ(NodeHeaders(true),
            (std::vector<std::string>{"NAME", "STATUS", "INSTANCE", "GPUS", "GPU", "AGE",
                                      "NODECLAIM", "ADDRESS", "AGENT", "REASON"}));
  v1::Node node = GpuNode();
  EXPECT_EQ(NodeRow(node, now, false),
            (std::vector<std::string>{"aks-ws-0", "Ready", "Standard_NC48ads_A100_v4", "2", "A100",
                                      "16m"}));
  EXPECT_EQ(NodeRow(node, now, true),
            (std::vector<std::string>{"aks-ws-0", "Ready", "Standard_NC48ads_A100_v4", "2", "A100",
                                      "16m", "ws-abcde", "10.0.0.4", "0.1.0", "<none>"}))
      << "a Ready node has no reason";
}

TEST(PrintersTest, NotReadyNodeShowsTheReasonInWide) {
  const absl::Time now = absl::FromUnixSeconds(kNow);
  v1::Node node = GpuNode();
  node.mutable_status()->mutable_conditions(0)->set_status("False");
  node.mutable_status()->mutable_conditions(0)->set_reason("GpuUnhealthy");
  EXPECT_EQ(NodeReadiness(node), "NotReady");
  std::vector<std::string> row = NodeRow(node, now, true);
  EXPECT_EQ(row[1], "NotReady");
  EXPECT_EQ(row.back(), "GpuUnhealthy");
  EXPECT_EQ(NodeRow(node, now, false).size(), 6u) << "the reason is wide only";
  node.mutable_status()->mutable_conditions(0)->set_status("Unknown");
  node.mutable_status()->mutable_conditions(0)->set_reason("NodeLeaseExpired");
  EXPECT_EQ(NodeRow(node, now, true)[1], "Unknown");
  EXPECT_EQ(NodeRow(node, now, true).back(), "NodeLeaseExpired");
  node.mutable_status()->clear_conditions();
  EXPECT_EQ(NodeReadiness(node), "Unknown") << "no Ready condition yet";
  EXPECT_EQ(NodeRow(node, now, true).back(), "<none>");
}

TEST(PrintersTest, BringYourOwnNodeTakesGpusFromFeatureDiscoveryLabels) {
  v1::Node node;
  node.mutable_metadata()->set_name("byo-1");
  (*node.mutable_metadata()->mutable_labels())["nvidia.com/gpu.count"] = "4";
  (*node.mutable_metadata()->mutable_labels())["nvidia.com/gpu.product"] = "NVIDIA-A100-SXM4-80GB";
  EXPECT_EQ(NodeRow(node, absl::FromUnixSeconds(kNow), false),
            (std::vector<std::string>{"byo-1", "Unknown", "<none>", "4", "NVIDIA-A100-SXM4-80GB",
                                      "<unknown>"}));
}

TEST(PrintersTest, FailedNodeClaimShowsErrorAndMessageInWide) {
  const absl::Time now = absl::FromUnixSeconds(kNow);
  EXPECT_EQ(NodeClaimHeaders(true),
            (std::vector<std::string>{"NAME", "INSTANCE", "PHASE", "NODE", "WORKSPACE", "AGE",
                                      "ATTEMPTS", "ERROR", "MESSAGE"}));
  v1::NodeClaim claim = FailedClaim();
  EXPECT_EQ(NodeClaimRow(claim, now, false),
            (std::vector<std::string>{"ws-fghij", "Standard_NC24ads_A100_v4", "Failed", "<none>",
                                      "default/workspace-phi-4", "16m"}));
  std::vector<std::string> wide = NodeClaimRow(claim, now, true);
  ASSERT_EQ(wide.size(), 9u);
  EXPECT_EQ(wide[6], "3");
  EXPECT_EQ(wide[7], "QuotaExceeded");
  EXPECT_EQ(wide[8], "Operation could not be completed as it results in exceedi...");
  EXPECT_EQ(wide[8].size(), 60u);
  claim.mutable_metadata()->mutable_deletion_timestamp()->set_seconds(1900);
  EXPECT_EQ(NodeClaimRow(claim, now, false)[2], "Terminating");
}

TEST(PrintersTest, TruncateCutsAtACharacterBoundary) {
  EXPECT_EQ(Truncate("short\nmessage", 60), "short message");
  EXPECT_EQ(Truncate("abcdefghij", 8), "abcde...");
  // "é" is two bytes; a cut in its middle backs up before it.
  EXPECT_EQ(Truncate("abcdé fghij", 8), "abcd...");
}

TEST(PrintersTest, WorkloadTableLikePods) {
  const absl::Time now = absl::FromUnixSeconds(kNow);
  EXPECT_EQ(WorkloadHeaders(false, false),
            (std::vector<std::string>{"NAME", "PHASE", "NODE", "ROLE", "RESTARTS", "AGE"}));
  EXPECT_EQ(WorkloadHeaders(true, true),
            (std::vector<std::string>{"NAMESPACE", "NAME", "PHASE", "NODE", "ROLE", "RESTARTS",
                                      "AGE", "ENDPOINT", "REASON"}));
  v1::Workload w = RunningWorkload();
  EXPECT_EQ(WorkloadRow(w, now, false, false),
            (std::vector<std::string>{"workspace-phi-4-0", "Ready", "aks-ws-0", "inference", "2",
                                      "16m"}));
  EXPECT_EQ(WorkloadRow(w, now, true, true),
            (std::vector<std::string>{"default", "workspace-phi-4-0", "Ready", "aks-ws-0",
                                      "inference", "2", "16m", "10.0.0.4:5000", "<none>"}));
  v1::Workload pending;
  pending.mutable_metadata()->set_name("workspace-phi-4-1");
  pending.mutable_status()->set_reason("ImagePullError");
  EXPECT_EQ(WorkloadRow(pending, now, true, false),
            (std::vector<std::string>{"workspace-phi-4-1", "Pending", "<none>", "<none>", "0",
                                      "<unknown>", "<none>", "ImagePullError"}));
}

TEST(PrintersTest, EventAgeAggregatesLikeKubectl) {
  const absl::Time now = absl::FromUnixSeconds(kNow);
  EXPECT_EQ(EventAge(MakeEvent("Workspace", "w", "Normal", "R", "m", 1, 1700, 1700), now), "5m");
  EXPECT_EQ(EventAge(MakeEvent("Workspace", "w", "Normal", "R", "m", 3, 1700, 1880), now),
            "2m (x3 over 5m)");
  v1::Event undated;
  EXPECT_EQ(EventAge(undated, now), "<unknown>");
}

TEST(PrintersTest, DescribeWorkspaceShowsWorkloadsClaimsAndEvents) {
  v1::Workspace ws = Sample();
  ws.mutable_status()->set_endpoint("10.0.0.4:5000");
  ws.mutable_status()->add_worker_nodes("aks-ws-0");
  ws.mutable_status()->add_worker_nodes("aks-ws-1");
  AddCondition(ws.mutable_status()->mutable_conditions(), "ResourceReady", "False",
               "NodeClaimNotReady", "1 of 2 node claims failed", 1800);
  DescribeExtras extras;
  v1::Workload pending = RunningWorkload();
  pending.mutable_metadata()->set_name("workspace-phi-4-1");
  pending.mutable_spec()->set_role("worker");
  pending.mutable_spec()->clear_node_name();
  pending.mutable_status()->set_phase("Pending");
  pending.mutable_status()->set_restarts(0);
  pending.mutable_status()->set_reason("NodeNotReady");
  extras.workloads = std::vector<v1::Workload>{RunningWorkload(), pending};
  v1::NodeClaim ready;
  ready.mutable_metadata()->set_name("ws-abcde");
  ready.mutable_status()->set_phase("Ready");
  ready.mutable_status()->set_node_name("aks-ws-0");
  ready.mutable_status()->set_attempts(1);
  extras.node_claims = std::vector<v1::NodeClaim>{ready, FailedClaim()};
  // Out of order on purpose: the text sorts by last occurrence, newest last.
  extras.events =
      std::vector<v1::Event>{MakeEvent("NodeClaim", "ws-fghij", "Warning", "LaunchFailed",
                                       "quota exceeded", 3, 1700, 1880),
                             MakeEvent("Workspace", "workspace-phi-4", "Normal", "NodeClaimCreated",
                                       "created 2 node claims", 1, 1700, 1700),
                             MakeEvent("Workspace", "workspace-phi-4", "Normal", "WorkloadPlaced",
                                       "placed workspace-phi-4-0 on aks-ws-0", 1, 1800, 1800)};
  const std::string text = DescribeWorkspace(ws, absl::FromUnixSeconds(kNow), extras);
  const std::string conditions =
      "Conditions:\n"
      "  Type            Status   Reason              LastTransition   Message\n"
      "  ----            ------   ------              --------------   -------\n"
      "  ResourceReady   False    NodeClaimNotReady   3m20s            1 of 2 node claims failed\n";
  const std::string rest =
      "Endpoint:           10.0.0.4:5000\n"
      "Nodes:              aks-ws-0, aks-ws-1\n"
      "Workloads:\n"
      "  NAME                PHASE     NODE       ROLE        RESTARTS   REASON\n"
      "  ----                -----     ----       ----        --------   ------\n"
      "  workspace-phi-4-0   Ready     aks-ws-0   inference   2          <none>\n"
      "  workspace-phi-4-1   Pending   <none>     worker      0          NodeNotReady\n"
      "Node claims:\n"
      "  NAME       PHASE    NODE       ATTEMPTS   ERROR           MESSAGE\n"
      "  ----       -----    ----       --------   -----           -------\n"
      "  ws-abcde   Ready    aks-ws-0   1          <none>          <none>\n"
      "  ws-fghij   Failed   <none>     3          QuotaExceeded   " +
      kQuotaMessage +
      "\n"
      "Events:\n"
      "  Type      Reason             Age               From                   Message\n"
      "  ----      ------             ---               ----                   -------\n"
      "  Normal    NodeClaimCreated   5m                workspace-controller   created 2 node "
      "claims\n"
      "  Normal    WorkloadPlaced     3m20s             workspace-controller   placed "
      "workspace-phi-4-0 on aks-ws-0\n"
      "  Warning   LaunchFailed       2m (x3 over 5m)   nodeclaim-controller   "
      "nodeclaim/ws-fghij: quota exceeded\n";
  EXPECT_NE(text.find(conditions + rest), std::string::npos) << text;
  EXPECT_TRUE(absl::EndsWith(text, rest)) << "the events come last\n" << text;
}

TEST(PrintersTest, DescribeWorkspaceWithoutEventsSaysNone) {
  v1::Workspace ws = Sample();
  DescribeExtras extras;
  extras.workloads.emplace();
  extras.node_claims.emplace();
  extras.events.emplace();
  const std::string text = DescribeWorkspace(ws, absl::FromUnixSeconds(kNow), extras);
  EXPECT_TRUE(absl::EndsWith(text,
                             "Nodes:              <none>\n"
                             "Workloads:          <none>\n"
                             "Node claims:        <none>\n"
                             "Events:             <none>\n"))
      << text;
  EXPECT_EQ(text.find("Endpoint:"), std::string::npos) << "no endpoint yet: no line";
  // Sections the server could not serve are left out.
  const std::string bare = DescribeWorkspace(ws, absl::FromUnixSeconds(kNow), DescribeExtras{});
  EXPECT_EQ(bare.find("Workloads:"), std::string::npos) << bare;
  EXPECT_EQ(bare.find("Events:"), std::string::npos) << bare;
}

TEST(PrintersTest, DescribeNodeShowsConditionsCapacityAndGpus) {
  v1::Node node = GpuNode();
  (*node.mutable_metadata()->mutable_labels())["kaito.sh/workspace"] = "workspace-phi-4";
  (*node.mutable_metadata()->mutable_labels())["apps"] = "phi-4";
  (*node.mutable_status()->mutable_capacity())["nvidia.com/gpu"] = "2";
  node.mutable_status()->mutable_gpus(1)->set_healthy(false);
  node.mutable_status()->mutable_gpus(1)->set_health_reason("XID 79: GPU has fallen off the bus");
  node.mutable_status()->mutable_gpus(1)->set_memory_bytes(int64_t{81559} << 20);
  const std::string text =
      DescribeNode(node, absl::FromUnixSeconds(kNow),
                   std::vector<v1::Event>{MakeEvent("Node", "aks-ws-0", "Warning", "GpuUnhealthy",
                                                    "GPU-1: XID 79", 1, 1900, 1900)});
  EXPECT_THAT(text, ::testing::StartsWith("Name:               aks-ws-0\n"
                                          "Labels:             apps=phi-4\n"
                                          "                    kaito.sh/workspace=workspace-phi-4\n"
                                          "Annotations:        <none>\n"))
      << text;
  EXPECT_THAT(text, ::testing::HasSubstr("Status:             Ready\n"
                                         "Instance Type:      Standard_NC48ads_A100_v4\n"
                                         "Provider ID:        <none>\n"
                                         "Node Claim:         ws-abcde\n"
                                         "Taints:             <none>\n"
                                         "Address:            10.0.0.4\n"
                                         "Agent Version:      0.1.0\n"));
  EXPECT_THAT(text, ::testing::HasSubstr(
                        "Conditions:\n"
                        "  Type    Status   Reason           LastTransition   Message\n"
                        "  ----    ------   ------           --------------   -------\n"
                        "  Ready   True     AgentConnected   8m20s            lease held\n"
                        "Capacity:\n"
                        "  nvidia.com/gpu:   2\n"
                        "GPUs:\n"
                        "  UUID    MODEL   MEMORY    HEALTHY   REASON\n"
                        "  ----    -----   ------    -------   ------\n"
                        "  GPU-0   A100    80Gi      True      <none>\n"
                        "  GPU-1   A100    81559Mi   False     XID 79: GPU has fallen off the bus\n"
                        "Events:\n"))
      << text;
  EXPECT_THAT(text, ::testing::EndsWith("  Warning   GpuUnhealthy   100s   nodeclaim-controller   "
                                        "GPU-1: XID 79\n"))
      << "a node's own events get no object prefix\n"
      << text;
}

TEST(PrintersTest, DescribeNodeClaimShowsStatusAndEvents) {
  v1::NodeClaim claim = FailedClaim();
  *claim.mutable_status()->mutable_last_attempt_time() = At(1940);
  const std::string text =
      DescribeNodeClaim(claim, absl::FromUnixSeconds(kNow), std::vector<v1::Event>{});
  EXPECT_THAT(text, ::testing::HasSubstr("Workspace:          default/workspace-phi-4\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("  Instance Type:        Standard_NC24ads_A100_v4\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("Status:\n"
                                         "  Phase:                Failed\n"
                                         "  Node:                 <none>\n"
                                         "  Provider ID:          <none>\n"
                                         "  Attempts:             3\n"
                                         "  Last Attempt:         1970-01-01T00:32:20Z (60s ago)\n"
                                         "  Error:                QuotaExceeded (not retryable)\n"
                                         "  Message:              " +
                                         kQuotaMessage + "\n"))
      << text;
  EXPECT_THAT(text, ::testing::EndsWith("Conditions:\n  <none>\nEvents:             <none>\n"))
      << text;
}

TEST(PrintersTest, DeletionBlockersNameWhatHoldsTheWorkspace) {
  v1::Workspace ws = Sample();
  ws.mutable_metadata()->add_finalizers("workspace.finalizer.kaito.sh");
  ws.mutable_status()->set_state("Deleting");
  AddCondition(ws.mutable_status()->mutable_conditions(), "ResourceReady", "False",
               "NodeClaimsReleasing", "waiting for 2 node claims to be deleted", 1900);
  EXPECT_EQ(DeletionBlockers(ws),
            "state Deleting; ResourceReady=False (NodeClaimsReleasing): waiting for 2 node claims "
            "to be deleted; finalizers workspace.finalizer.kaito.sh");
}

}  // namespace
}  // namespace kaito::ctl
