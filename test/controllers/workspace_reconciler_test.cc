// The workspace and node claim reconcilers against an in-memory store, a fake
// provisioner and a fake clock: each Reconcile is called by hand, so every step of the
// flow (and every failure) is checked in order, without threads or waiting.
#include "server/controllers/workspace_reconciler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <google/protobuf/util/message_differencer.h>

#include "presets/offerings.h"
#include "server/controllers/garbage_collector.h"
#include "test/controllers/world.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;
using testing::World;

google::protobuf::Map<std::string, std::string> label_pairs_for(const std::string& workspace) {
  google::protobuf::Map<std::string, std::string> labels;
  labels[kLabelWorkspace] = workspace;
  labels[kLabelWorkspaceNamespace] = "default";
  return labels;
}

std::string Status(const v1::Workspace& ws, const std::string& type) {
  const v1::Condition* c = FindCondition(ws.status().conditions(), type);
  return c ? c->status() : "Unknown";
}
std::string Reason(const v1::Workspace& ws, const std::string& type) {
  const v1::Condition* c = FindCondition(ws.status().conditions(), type);
  return c ? c->reason() : "";
}

TEST(WorkspaceReconcilerTest, FromCreateToReadyStepByStep) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  v1::Workspace ws = w.Get("phi");
  EXPECT_THAT(ws.metadata().finalizers(), ::testing::ElementsAre(kWorkspaceFinalizer));
  EXPECT_EQ(ws.status().target_node_count(), 1);
  EXPECT_EQ(ws.status().state(), "Pending");
  EXPECT_EQ(Status(ws, "ResourceReady"), "False");
  EXPECT_EQ(Status(ws, "NodeClaimReady"), "False");
  auto claims = w.claims_.ListShared("");
  ASSERT_EQ(claims.size(), 1u);
  const v1::NodeClaim claim = *claims[0];
  EXPECT_THAT(claim.metadata().name(), ::testing::MatchesRegex("ws[0-9a-f]{10}"));
  EXPECT_EQ(claim.spec().instance_type(), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(claim.spec().labels().at("app"), "phi");
  EXPECT_EQ(claim.spec().labels().at(kLabelWorkspace), "phi");

  // Reconciling again (a retry, a restart) makes no second claim.
  w.ReconcileWorkspace("phi");
  EXPECT_EQ(w.claims_.ListShared("").size(), 1u);

  // The claim controller asks the provisioner once the attempt is recorded.
  w.ReconcileClaims();
  ASSERT_EQ(w.provisioner_.creates().size(), 1u);
  EXPECT_EQ(w.provisioner_.creates()[0].agent_server(), "127.0.0.1:1");
  EXPECT_EQ(w.claims_.GetShared("", claim.metadata().name())->status().attempts(), 1);
  v1::ProvisionedNode running;
  running.set_phase("Running");
  running.set_node_name("aks-node-1");
  running.set_provider_id("azure:///x");
  w.provisioner_.SetNode(claim.metadata().name(), running);
  w.ReconcileClaims();  // The create reply says Running: Registered.
  EXPECT_EQ(w.claims_.GetShared("", claim.metadata().name())->status().phase(), "Registered");
  w.RegisterNode(claim, "aks-node-1");
  w.ReconcileClaims();
  EXPECT_EQ(w.claims_.GetShared("", claim.metadata().name())->status().phase(), "Ready");

  // Nodes ready: the workload is placed.
  w.ReconcileWorkspace("phi");
  ws = w.Get("phi");
  EXPECT_EQ(Status(ws, "ResourceReady"), "True");
  EXPECT_EQ(Status(ws, "NodeClaimReady"), "True");
  EXPECT_EQ(Status(ws, "InferenceReady"), "False");
  auto workloads = w.workloads_.ListShared("default");
  ASSERT_EQ(workloads.size(), 1u);
  EXPECT_EQ(workloads[0]->spec().node_name(), "aks-node-1");
  EXPECT_EQ(workloads[0]->spec().termination_grace_period_seconds(), 30);
  EXPECT_THAT(workloads[0]->metadata().finalizers(), ::testing::ElementsAre(kWorkloadFinalizer));

  w.ReportWorkload("phi-0", "Ready");
  w.ReconcileWorkspace("phi");
  ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "Ready");
  EXPECT_EQ(Status(ws, "InferenceReady"), "True");
  EXPECT_EQ(Status(ws, "WorkspaceSucceeded"), "True");
  EXPECT_EQ(Status(ws, "WorkspaceReady"), "True");
  EXPECT_EQ(ws.status().endpoint(), "10.0.0.1:5000");
  EXPECT_THAT(ws.status().worker_nodes(), ::testing::ElementsAre("aks-node-1"));
  EXPECT_THAT(w.EventReasons(), ::testing::IsSupersetOf({"NodeClaimCreated", "NodeLaunched",
                                                          "NodeReady", "WorkloadStarted",
                                                          "WorkspaceReady"}));
  // Level-triggered: nothing changes when nothing changed.
  const std::string rv = ws.metadata().resource_version();
  w.ReconcileWorkspace("phi");
  EXPECT_EQ(w.Get("phi").metadata().resource_version(), rv);

  // A failing workload is classified with Kaito's reasons.
  w.ReportWorkload("phi-0", "Pending", "ImagePullError");
  w.ReconcileWorkspace("phi");
  ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "NotReady");
  EXPECT_EQ(Reason(ws, "InferenceReady"), "ImagePullError");
  EXPECT_EQ(ws.status().endpoint(), "");
}

TEST(WorkspaceReconcilerTest, QuotaFailureIsRetriedThenFinalThenRetriedOnReapply) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  const std::string claim = w.claims_.ListShared("")[0]->metadata().name();
  v1::ProvisionedNode quota;
  quota.set_phase("Failed");
  quota.set_error_code("QuotaExceeded");
  quota.set_retryable(true);
  quota.set_message("Operation could not be completed as it results in exceeding approved quota");
  w.provisioner_.SetNode(claim, quota);
  w.ReconcileClaims();
  auto c = w.claims_.GetShared("", claim);
  EXPECT_EQ(c->status().phase(), "Pending") << "retryable: waits for its backoff";
  EXPECT_EQ(c->status().attempts(), 1);
  EXPECT_EQ(FromTimestamp(c->status().next_attempt_time()), w.clock_.Now() + absl::Seconds(10));
  w.ReconcileWorkspace("phi");
  v1::Workspace ws = w.Get("phi");
  EXPECT_EQ(Reason(ws, "ResourceReady"), "QuotaExceeded");
  EXPECT_THAT(FindCondition(ws.status().conditions(), "ResourceReady")->message(),
              HasSubstr("retrying"));
  EXPECT_EQ(ws.status().state(), "Pending");

  // Before the backoff: no new attempt.
  auto r = w.nodeclaim_->Reconcile(claim);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->requeue_after, absl::Seconds(10));
  EXPECT_EQ(w.provisioner_.creates().size(), 1u);
  w.clock_.Advance(absl::Seconds(10));
  w.ReconcileClaims();  // Attempt 2 of 2 fails too: final.
  EXPECT_EQ(w.provisioner_.creates().size(), 2u);
  EXPECT_EQ(w.claims_.GetShared("", claim)->status().phase(), "Failed");
  w.ReconcileWorkspace("phi");
  ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "Failed");
  EXPECT_EQ(Status(ws, "WorkspaceSucceeded"), "False");
  EXPECT_EQ(Reason(ws, "WorkspaceSucceeded"), "workspaceFailed");
  EXPECT_THAT(FindCondition(ws.status().conditions(), "ResourceReady")->message(),
              HasSubstr("2 attempts"));
  EXPECT_THAT(w.EventReasons(), ::testing::Contains("NodeClaimFailed"));
  EXPECT_THAT(w.EventReasons(), ::testing::Contains("WorkspaceFailed"));

  // Applied again unchanged: the failed claim is replaced by a new one.
  v1::Workspace again = w.Get("phi");
  again.mutable_metadata()->clear_resource_version();
  auto written = UpdateSync(w.workspaces_, again);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->object.metadata().annotations().at(kAnnotationRetryRequested), "1");
  EXPECT_EQ(written->object.metadata().generation(), 1) << "a retry is not a spec change";
  w.ReconcileWorkspace("phi");
  std::vector<std::shared_ptr<const v1::NodeClaim>> live;
  for (const auto& c : w.claims_.ListShared("")) {
    if (c->metadata().has_deletion_timestamp()) {
      EXPECT_EQ(c->metadata().name(), claim) << "the failed claim is released";
    } else {
      live.push_back(c);
    }
  }
  ASSERT_EQ(live.size(), 1u);
  EXPECT_NE(live[0]->metadata().name(), claim);
  EXPECT_EQ(live[0]->status().attempts(), 0);
  EXPECT_EQ(w.Get("phi").status().state(), "Pending");
}

// The claim's Ready condition (reason, message).
const v1::Condition* ClaimReady(World& w, const std::string& claim) {
  auto c = w.claims_.GetShared("", claim);
  return c == nullptr ? nullptr : FindCondition(c->status().conditions(), "Ready");
}

// Brings the first claim's machine to Running as `node` (its agent not yet registered).
std::string LaunchFirstClaim(World& w, const std::string& node) {
  const std::string claim = w.claims_.ListShared("")[0]->metadata().name();
  v1::ProvisionedNode running;
  running.set_phase("Running");
  running.set_node_name(node);
  running.set_provider_id("azure:///vmss/" + node);
  w.provisioner_.SetNode(claim, running);
  w.ReconcileClaims();
  w.ReconcileClaims();
  EXPECT_EQ(w.claims_.GetShared("", claim)->status().phase(), "Registered");
  return claim;
}

TEST(NodeInitializationTest, AMachineWhoseGpusNeverAppearIsReplacedThenTheClaimFails) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  const std::string claim = LaunchFirstClaim(w, "aks-n1");
  EXPECT_EQ(ClaimReady(w, claim)->reason(), "NodeNotRegistered");

  // The agent registers, Ready, but the driver shows no GPU.
  w.RegisterNode(*w.claims_.GetShared("", claim), "aks-n1", /*gpus=*/0);
  auto r = w.nodeclaim_->Reconcile(claim);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requeue_after, absl::Minutes(15)) << "woken at the initialization deadline";
  EXPECT_EQ(w.claims_.GetShared("", claim)->status().phase(), "Registered");
  EXPECT_EQ(ClaimReady(w, claim)->reason(), "GpuNotFound");
  EXPECT_THAT(ClaimReady(w, claim)->message(),
              HasSubstr("reports 0 healthy GPUs of the 1 of Standard_NC24ads_A100_v4"));
  w.clock_.Advance(absl::Minutes(14));
  w.ReconcileClaims();
  EXPECT_TRUE(w.provisioner_.deletes().empty()) << "not before the deadline";

  // Past it: the machine is released, its Node object goes, and the claim tries again.
  w.clock_.Advance(absl::Minutes(1));
  w.ReconcileClaims();
  EXPECT_EQ(w.provisioner_.deletes(), std::vector<std::string>{claim});
  EXPECT_EQ(w.nodes_.GetShared("", "aks-n1"), nullptr);
  auto c = w.claims_.GetShared("", claim);
  EXPECT_EQ(c->status().phase(), "Pending");
  EXPECT_EQ(c->status().error_code(), "NodeNotInitialized");
  EXPECT_EQ(c->status().node_name(), "");
  EXPECT_THAT(c->status().message(), HasSubstr("not initialized within 15m"));
  EXPECT_EQ(FromTimestamp(c->status().next_attempt_time()), w.clock_.Now() + absl::Seconds(10));
  w.ReconcileWorkspace("phi");
  v1::Workspace ws = w.Get("phi");
  EXPECT_EQ(Reason(ws, "ResourceReady"), "NodeNotInitialized");
  EXPECT_THAT(FindCondition(ws.status().conditions(), "ResourceReady")->message(),
              HasSubstr("retrying"));
  EXPECT_THAT(w.EventReasons(), ::testing::Contains("NodeClaimFailed"));

  // Attempt 2: a new machine whose agent never dials in. With the attempts spent the
  // claim fails, and its machine is released all the same.
  w.clock_.Advance(absl::Seconds(10));
  w.ReconcileClaims();
  ASSERT_EQ(w.provisioner_.creates().size(), 2u);
  LaunchFirstClaim(w, "aks-n2");
  w.clock_.Advance(absl::Minutes(15));
  w.ReconcileClaims();
  c = w.claims_.GetShared("", claim);
  EXPECT_EQ(c->status().phase(), "Failed");
  EXPECT_EQ(c->status().error_code(), "RegistrationTimeout");
  EXPECT_THAT(c->status().message(), HasSubstr("no agent registered node aks-n2 within 15m"));
  EXPECT_EQ(w.provisioner_.deletes().size(), 2u);
  w.ReconcileWorkspace("phi");
  ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "Failed");
  EXPECT_EQ(Reason(ws, "ResourceReady"), "RegistrationTimeout");
}

TEST(NodeInitializationTest, AnInitializedNodeIsNeverTimedOutAndASlowOneIsWaitedFor) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  const std::string claim = LaunchFirstClaim(w, "aks-n1");
  // Slow: its agent registers 14 minutes in, with its GPU.
  w.clock_.Advance(absl::Minutes(14));
  w.ReconcileClaims();
  w.RegisterNode(*w.claims_.GetShared("", claim), "aks-n1");
  auto r = w.nodeclaim_->Reconcile(claim);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->requeue_after, absl::ZeroDuration()) << "initialized: no deadline";
  auto c = w.claims_.GetShared("", claim);
  EXPECT_EQ(c->status().phase(), "Ready");
  EXPECT_TRUE(IsConditionTrue(c->status().conditions(), "Initialized"));

  // Later its GPU fails: the claim is not ready, but it is not timed out (the node's health
  // is the node lifecycle's business, not a create that never finished).
  v1::Node node = *w.nodes_.GetShared("", "aks-n1");
  node.mutable_status()->mutable_gpus(0)->set_healthy(false);
  SetCondition(node.mutable_status()->mutable_conditions(), "Ready", false, "GpuUnhealthy",
               "unhealthy GPU aks-n1-gpu-0: Xid 79", 0, w.clock_.Now());
  ASSERT_TRUE(UpdateStatusSync(w.nodes_, node).ok());
  w.clock_.Advance(absl::Hours(1));
  w.ReconcileClaims();
  c = w.claims_.GetShared("", claim);
  EXPECT_EQ(c->status().phase(), "Registered");
  EXPECT_EQ(ClaimReady(w, claim)->reason(), "NodeNotReady");
  EXPECT_THAT(ClaimReady(w, claim)->message(), HasSubstr("Xid 79"));
  EXPECT_TRUE(w.provisioner_.deletes().empty());
}

TEST(WorkspaceReconcilerTest, DeletionStopsWorkloadsReleasesClaimsThenFinalizes) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  w.BringUpNode("n1");
  const v1::NodeClaim claim = *w.claims_.ListShared("")[0];
  w.ReconcileWorkspace("phi");
  ASSERT_EQ(w.workloads_.ListShared("default").size(), 1u);

  ASSERT_TRUE(DeleteSync(w.workspaces_, "default", "phi").ok());
  w.ReconcileWorkspace("phi");
  EXPECT_EQ(w.Get("phi").status().state(), "Deleting");
  // The workload waits for its agent (its node is ready); the claim waits for the workload.
  auto workload = w.workloads_.GetShared("default", "phi-0");
  ASSERT_NE(workload, nullptr);
  EXPECT_TRUE(workload->metadata().has_deletion_timestamp());
  EXPECT_FALSE(w.claims_.GetShared("", claim.metadata().name())->metadata().has_deletion_timestamp());
  w.ReconcileWorkspace("phi");
  EXPECT_NE(w.workloads_.GetShared("default", "phi-0"), nullptr) << "not released early";
  // The agent stopped it (its session removes the finalizer): then the claim goes.
  v1::Workload stopped = *w.workloads_.GetShared("default", "phi-0");
  RemoveFinalizer(stopped.mutable_metadata(), kWorkloadFinalizer);
  ASSERT_TRUE(UpdateSync(w.workloads_, stopped).ok());
  EXPECT_EQ(w.workloads_.GetShared("default", "phi-0"), nullptr);
  w.ReconcileWorkspace("phi");
  EXPECT_TRUE(w.claims_.GetShared("", claim.metadata().name())->metadata().has_deletion_timestamp());
  EXPECT_NE(w.workspaces_.GetShared("default", "phi"), nullptr) << "waits for the claim";
  // The claim controller releases the machine and the node.
  w.ReconcileClaims();
  w.ReconcileClaims();
  EXPECT_THAT(w.provisioner_.deletes(), ::testing::ElementsAre(claim.metadata().name()));
  EXPECT_EQ(w.claims_.GetShared("", claim.metadata().name()), nullptr);
  EXPECT_EQ(w.nodes_.GetShared("", "n1"), nullptr);
  w.ReconcileWorkspace("phi");
  EXPECT_EQ(w.workspaces_.GetShared("default", "phi"), nullptr);
}

TEST(WorkspaceReconcilerTest, DeletionReleasesWorkloadsOfANodeThatIsGone) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  w.BringUpNode("n1");
  w.ReconcileWorkspace("phi");
  ASSERT_TRUE(DeleteSync(w.nodes_, "", "n1").ok());
  ASSERT_TRUE(DeleteSync(w.workspaces_, "default", "phi").ok());
  w.ReconcileWorkspace("phi");  // Releases the workload nobody can stop.
  w.ReconcileWorkspace("phi");  // Deletes the claim.
  w.ReconcileClaims();
  w.ReconcileClaims();
  w.ReconcileWorkspace("phi");
  EXPECT_EQ(w.workloads_.GetShared("default", "phi-0"), nullptr);
  EXPECT_EQ(w.claims_.ListShared("").size(), 0u);
  EXPECT_EQ(w.workspaces_.GetShared("default", "phi"), nullptr);
}

TEST(WorkspaceReconcilerTest, LostNodeIsReplacedAndItsWorkloadPlacedAgain) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  w.BringUpNode("n1");
  w.ReconcileWorkspace("phi");
  w.ReportWorkload("phi-0", "Ready");
  w.ReconcileWorkspace("phi");
  ASSERT_EQ(w.Get("phi").status().state(), "Ready");

  // The node lifecycle controller says n1 is lost.
  v1::Node lost = *w.nodes_.GetShared("", "n1");
  SetCondition(lost.mutable_status()->mutable_conditions(), "Ready", false, "NodeLost", "", 0,
               w.clock_.Now());
  ASSERT_TRUE(UpdateStatusSync(w.nodes_, lost).ok());
  w.ReconcileWorkspace("phi");
  auto claims = w.claims_.ListShared("");
  ASSERT_EQ(claims.size(), 2u) << "the lost node's claim is being deleted, a new one made";
  int deleting = 0;
  for (const auto& c : claims) deleting += c->metadata().has_deletion_timestamp();
  EXPECT_EQ(deleting, 1);
  EXPECT_EQ(w.workloads_.GetShared("default", "phi-0"), nullptr)
      << "its node is lost: nobody will confirm it stopped, so it is released at once";
  EXPECT_EQ(w.Get("phi").status().state(), "NotReady");
  EXPECT_THAT(w.EventReasons(), ::testing::IsSupersetOf({"NodeClaimReplaced", "WorkloadLost"}));

  // The replacement comes up: the workload is placed on it, once.
  std::shared_ptr<const v1::NodeClaim> replacement;
  for (const auto& c : w.claims_.ListShared("")) {
    if (!c->metadata().has_deletion_timestamp()) replacement = c;
  }
  ASSERT_NE(replacement, nullptr);
  v1::ProvisionedNode running;
  running.set_phase("Running");
  running.set_node_name("n2");
  w.provisioner_.SetNode(replacement->metadata().name(), running);
  w.ReconcileClaims();
  w.ReconcileClaims();
  w.RegisterNode(*replacement, "n2");
  w.ReconcileWorkspace("phi");
  auto workloads = w.workloads_.ListShared("default");
  ASSERT_EQ(workloads.size(), 1u);
  EXPECT_EQ(workloads[0]->spec().node_name(), "n2");
}

TEST(WorkspaceReconcilerTest, ChangedSpecRollsTheWorkloadAndGraceTravelsWithIt) {
  World w;
  v1::Workspace ws = w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  ws.set_termination_grace_period_seconds(120);
  ws.mutable_metadata()->clear_resource_version();
  ASSERT_TRUE(UpdateSync(w.workspaces_, ws).ok());
  w.ReconcileWorkspace("phi");
  w.BringUpNode("n1");
  w.ReconcileWorkspace("phi");
  auto before = w.workloads_.GetShared("default", "phi-0");
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before->spec().termination_grace_period_seconds(), 120);
  w.ReportWorkload("phi-0", "Ready");
  w.ReconcileWorkspace("phi");
  ASSERT_EQ(w.Get("phi").status().state(), "Ready");

  // A new preset renders a different workload: it is updated in place (same node, new
  // generation), and the workspace is NotReady until the agent runs the new one.
  v1::Workspace changed = w.Get("phi");
  changed.mutable_inference()->mutable_preset()->set_name("phi-3-mini-4k-instruct");
  changed.mutable_metadata()->clear_resource_version();
  auto written = UpdateSync(w.workspaces_, changed);
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(written->object.metadata().generation(), 2);
  w.ReconcileWorkspace("phi");
  auto after = w.workloads_.GetShared("default", "phi-0");
  ASSERT_NE(after, nullptr);
  EXPECT_EQ(after->metadata().uid(), before->metadata().uid());
  EXPECT_EQ(after->metadata().generation(), before->metadata().generation() + 1);
  EXPECT_EQ(after->spec().node_name(), "n1");
  EXPECT_FALSE(google::protobuf::util::MessageDifferencer::Equals(after->spec(), before->spec()));
  ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "NotReady") << "the agent still reports the old generation";
  EXPECT_EQ(ws.status().observed_generation(), 2);
  w.ReportWorkload("phi-0", "Ready");
  w.ReconcileWorkspace("phi");
  EXPECT_EQ(w.Get("phi").status().state(), "Ready");
}

TEST(WorkspaceReconcilerTest, CrashLoopPastItsLimitFailsTheWorkspaceWithTheReason) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  w.BringUpNode("n1");
  w.ReconcileWorkspace("phi");
  w.ReportWorkload("phi-0", "Starting", "ContainerCrashLoopBackOff");
  w.ReconcileWorkspace("phi");
  v1::Workspace ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "Pending") << "restarting with backoff is not final";
  EXPECT_EQ(Reason(ws, "InferenceReady"), "ContainerCrashLoopBackOff");
  w.ReportWorkload("phi-0", "Failed", "ContainerCrashLoopBackOff");
  w.ReconcileWorkspace("phi");
  ws = w.Get("phi");
  EXPECT_EQ(ws.status().state(), "Failed");
  EXPECT_EQ(Reason(ws, "InferenceReady"), "ContainerCrashLoopBackOff");
  EXPECT_EQ(Reason(ws, "WorkspaceSucceeded"), "workspaceFailed");
  EXPECT_THAT(FindCondition(ws.status().conditions(), "WorkspaceSucceeded")->message(),
              HasSubstr("phi-0 failed on node n1"));
  EXPECT_THAT(w.EventReasons(), ::testing::IsSupersetOf({"WorkloadFailed", "WorkspaceFailed"}));
}

TEST(WorkspaceReconcilerTest, TuningJobRunsToSucceededOrFails) {
  for (const std::string outcome : {"Succeeded", "Failed"}) {
    World w;
    v1::Workspace ws;
    ws.mutable_metadata()->set_name("tune");
    ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
    (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["app"] = "tune";
    ws.mutable_tuning()->mutable_preset()->set_name("phi-3-mini-128k-instruct");
    ws.mutable_tuning()->set_method("qlora");
    ws.mutable_tuning()->mutable_input()->add_urls("https://example.com/data.parquet");
    ws.mutable_tuning()->mutable_output()->set_image("example.azurecr.io/adapter:1");
    ASSERT_TRUE(CreateSync(w.workspaces_, ws).ok());
    w.ReconcileWorkspace("tune");
    w.BringUpNode("n1");
    w.ReconcileWorkspace("tune");
    auto workloads = w.workloads_.ListShared("default");
    ASSERT_EQ(workloads.size(), 1u);
    EXPECT_EQ(workloads[0]->spec().role(), "tuning");
    EXPECT_EQ(workloads[0]->spec().restart_policy(), "Never");
    w.ReportWorkload("tune-0", "Running");
    w.ReconcileWorkspace("tune");
    v1::Workspace got = w.Get("tune");
    EXPECT_EQ(got.status().state(), "Running");
    EXPECT_EQ(Status(got, "JobStarted"), "True");
    EXPECT_EQ(FindCondition(got.status().conditions(), "InferenceReady"), nullptr);
    w.ReportWorkload("tune-0", outcome, outcome == "Failed" ? "JobFailed" : "");
    w.ReconcileWorkspace("tune");
    got = w.Get("tune");
    EXPECT_EQ(got.status().state(), outcome);
    EXPECT_EQ(Status(got, "WorkspaceSucceeded"), outcome == "Succeeded" ? "True" : "False");
    EXPECT_EQ(Status(got, "WorkspaceReady"), outcome == "Succeeded" ? "True" : "False");
    if (outcome == "Failed") {
      EXPECT_EQ(Reason(got, "JobStarted"), "WorkspaceTuningJobStatusFailed");
    } else {
      EXPECT_THAT(w.EventReasons(), ::testing::Contains("TuningSucceeded"));
      // Its node is lost afterwards: the finished job is not run again on a new node.
      v1::Node lost = *w.nodes_.GetShared("", "n1");
      SetCondition(lost.mutable_status()->mutable_conditions(), "Ready", false, "NodeLost", "",
                   0, w.clock_.Now());
      ASSERT_TRUE(UpdateStatusSync(w.nodes_, lost).ok());
      w.ReconcileWorkspace("tune");
      EXPECT_EQ(w.claims_.ListShared("").size(), 1u) << "no replacement claim";
      auto after = w.workloads_.ListShared("default");
      ASSERT_EQ(after.size(), 1u);
      EXPECT_FALSE(after[0]->metadata().has_deletion_timestamp());
      EXPECT_EQ(w.Get("tune").status().state(), "Succeeded");
    }
  }
}

TEST(GarbageCollectorTest, RemovesWhatNoWorkspaceOwnsAndEventsPastTheirTtl) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");  // A claim and an event for a workspace that exists.
  // Orphans: a claim and a workload of a workspace that is gone, and an old event.
  v1::NodeClaim orphan_claim;
  orphan_claim.mutable_metadata()->set_name("wsorphan0001");
  *orphan_claim.mutable_metadata()->mutable_labels() = label_pairs_for("gone");
  orphan_claim.mutable_metadata()->add_finalizers(kNodeClaimFinalizer);
  ASSERT_TRUE(CreateSync(w.claims_, orphan_claim).ok());
  v1::Workload orphan_workload;
  orphan_workload.mutable_metadata()->set_name("gone-0");
  *orphan_workload.mutable_metadata()->mutable_labels() = label_pairs_for("gone");
  orphan_workload.mutable_metadata()->add_finalizers(kWorkloadFinalizer);
  orphan_workload.mutable_spec()->set_node_name("n-missing");
  ASSERT_TRUE(CreateSync(w.workloads_, orphan_workload).ok());
  const size_t events_before = w.events_.ListShared("").size();
  ASSERT_GT(events_before, 0u);

  GarbageCollectorOptions options;
  options.event_ttl = absl::Hours(1);
  GarbageCollector gc(w.objects_, &w.clock_, options);
  ASSERT_TRUE(gc.Reconcile("sweep").ok());
  EXPECT_TRUE(w.claims_.GetShared("", "wsorphan0001")->metadata().has_deletion_timestamp())
      << "deleted; its finalizer makes the claim controller release the machine first";
  ASSERT_TRUE(gc.Reconcile("sweep").ok());  // Deleting and orphaned: released.
  EXPECT_EQ(w.workloads_.GetShared("default", "gone-0"), nullptr);
  EXPECT_EQ(w.claims_.ListShared("", [](const v1::NodeClaim& c) {
    return c.metadata().labels().at(kLabelWorkspace) == "phi";
  }).size(), 1u) << "what a live workspace owns stays";
  EXPECT_EQ(w.events_.ListShared("").size(), events_before) << "events within their TTL stay";
  w.clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(gc.Reconcile("sweep").ok());
  EXPECT_EQ(w.events_.ListShared("").size(), 0u);
}

TEST(GarbageCollectorTest, DeletesMachinesThatNoClaimNamesAfterTheGrace) {
  World w;
  w.CreateWorkspace("phi", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("phi");
  const auto claims = w.claims_.ListShared("");
  ASSERT_EQ(claims.size(), 1u);
  auto machine = [&](const std::string& name, std::optional<absl::Duration> age) {
    v1::ProvisionedNode node;
    node.set_claim_name(name);
    node.set_phase("Running");
    if (age) *node.mutable_created_time() = ToTimestamp(w.clock_.Now() - *age);
    w.provisioner_.SetNode(name, node);
  };
  machine(claims[0]->metadata().name(), absl::Hours(1));  // Claimed: stays.
  machine("wsorphanold1", absl::Minutes(10));             // Orphan past the grace: goes.
  machine("wsorphannew1", absl::Seconds(30));             // Orphan, young: stays for now.
  machine("wsnotime0001", std::nullopt);                  // No creation time: never.
  GarbageCollectorOptions options;
  options.orphan_grace = absl::Minutes(2);
  int collected = 0;  // What kaito_orphaned_machines_collected_total counts.
  options.on_orphan_collected = [&collected] { ++collected; };
  GarbageCollector gc(w.objects_, &w.clock_, options, &w.provisioner_);
  ASSERT_TRUE(gc.Reconcile("sweep").ok());
  EXPECT_EQ(w.provisioner_.deletes(), std::vector<std::string>{"wsorphanold1"});
  EXPECT_EQ(collected, 1);
  w.clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(gc.Reconcile("sweep").ok());
  EXPECT_EQ(w.provisioner_.deletes(),
            (std::vector<std::string>{"wsorphanold1", "wsorphannew1"}));
  EXPECT_EQ(collected, 2);

  GarbageCollector without_provisioner(w.objects_, &w.clock_, options);
  ASSERT_TRUE(without_provisioner.Reconcile("sweep").ok());
  EXPECT_EQ(w.provisioner_.deletes().size(), 2u);
}

// Capacity fallback across three instance types: the first fails for quota, the second
// for SKU availability, the third serves; a second workspace with the same fallback skips
// the first two at once (the unavailable offerings are shared) and only asks for the third.
TEST(CapacityFallbackTest, WalksTheOfferingsAndTheNextWorkspaceSkipsTheUnavailable) {
  World w;
  auto create = [&](const std::string& name) {
    v1::Workspace ws;
    ws.mutable_metadata()->set_name(name);
    (*ws.mutable_metadata()->mutable_annotations())[presets::kAnnotationInstanceTypeFallback] =
        "Standard_NC48ads_A100_v4, Standard_NC96ads_A100_v4";
    ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
    (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["app"] = name;
    ws.mutable_inference()->mutable_preset()->set_name("phi-3-mini-128k-instruct");
    ASSERT_TRUE(CreateSync(w.workspaces_, ws).ok());
  };
  auto live_claims = [&](const std::string& ws) {
    return w.claims_.ListShared("", [&](const v1::NodeClaim& c) {
      return c.metadata().labels().at(kLabelWorkspace) == ws &&
             !c.metadata().has_deletion_timestamp();
    });
  };
  // Fails the workspace's one live claim with `code` and lets both controllers act on it.
  auto fail_claim = [&](const std::string& ws, const std::string& code) {
    auto claims = live_claims(ws);
    ASSERT_EQ(claims.size(), 1u);
    v1::ProvisionedNode failed;
    failed.set_phase("Failed");
    failed.set_error_code(code);
    failed.set_retryable(code != "SkuNotAvailable");  // Fallback must not wait for retries.
    failed.set_message(code + " for " + claims[0]->spec().instance_type());
    w.provisioner_.SetNode(claims[0]->metadata().name(), failed);
    w.ReconcileClaims();
    ASSERT_EQ(w.claims_.GetShared("", claims[0]->metadata().name())->status().phase(), "Failed")
        << "a capacity failure with fallback ends the claim at once";
    w.ReconcileWorkspace(ws);
    w.ReconcileClaims();  // The old claim releases its machine.
    w.ReconcileClaims();
  };

  create("first");
  w.ReconcileWorkspace("first");
  ASSERT_EQ(live_claims("first").size(), 1u);
  EXPECT_EQ(live_claims("first")[0]->spec().instance_type(), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(live_claims("first")[0]->metadata().annotations().at(kAnnotationCapacityFallback),
            "true");
  fail_claim("first", "QuotaExceeded");
  EXPECT_EQ(w.Get("first").status().instance_type(), "Standard_NC48ads_A100_v4");
  w.ReconcileWorkspace("first");
  ASSERT_EQ(live_claims("first").size(), 1u);
  EXPECT_EQ(live_claims("first")[0]->spec().instance_type(), "Standard_NC48ads_A100_v4");
  fail_claim("first", "SkuNotAvailable");
  EXPECT_EQ(w.Get("first").status().instance_type(), "Standard_NC96ads_A100_v4");
  w.ReconcileWorkspace("first");
  ASSERT_EQ(live_claims("first").size(), 1u);
  EXPECT_EQ(live_claims("first")[0]->spec().instance_type(), "Standard_NC96ads_A100_v4");
  EXPECT_EQ(w.Get("first").status().target_node_count(), 1) << "sized again for the new type";
  std::vector<std::string> reasons = w.EventReasons();
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "OfferingUnavailable"), 2);
  EXPECT_EQ(std::count(reasons.begin(), reasons.end(), "OfferingChosen"), 2);
  EXPECT_EQ(w.unavailable_marked_,
            (std::vector<std::string>{"Standard_NC24ads_A100_v4/on-demand",
                                      "Standard_NC48ads_A100_v4/on-demand"}));

  const size_t creates_before = w.provisioner_.creates().size();
  create("second");
  w.ReconcileWorkspace("second");
  EXPECT_EQ(w.Get("second").status().instance_type(), "Standard_NC96ads_A100_v4")
      << "the unavailable offerings are skipped before any claim";
  EXPECT_TRUE(live_claims("second").empty());
  w.ReconcileWorkspace("second");
  ASSERT_EQ(live_claims("second").size(), 1u);
  EXPECT_EQ(live_claims("second")[0]->spec().instance_type(), "Standard_NC96ads_A100_v4");
  w.ReconcileClaims();
  for (size_t i = creates_before; i < w.provisioner_.creates().size(); ++i) {
    EXPECT_EQ(w.provisioner_.creates()[i].spec().instance_type(), "Standard_NC96ads_A100_v4");
  }
  int skipped = 0;
  for (const auto& e : w.events_.ListShared("")) {
    if (e->reason() == "OfferingSkipped" && e->involved_object().name() == "second") {
      ++skipped;
      EXPECT_NE(e->message().find("Standard_NC48ads_A100_v4"), std::string::npos);
      EXPECT_NE(e->message().find("SkuNotAvailable"), std::string::npos);
    }
  }
  EXPECT_EQ(skipped, 1);

  // Past the TTL the workspace's own offering may be tried again by a new workspace.
  w.clock_.Advance(absl::Minutes(4));
  create("third");
  w.ReconcileWorkspace("third");
  w.ReconcileWorkspace("third");
  ASSERT_EQ(live_claims("third").size(), 1u);
  EXPECT_EQ(live_claims("third")[0]->spec().instance_type(), "Standard_NC24ads_A100_v4");
}

// Without fallback a capacity failure is retried by the claim and then fails the workspace.
TEST(CapacityFallbackTest, WithoutTheAnnotationNothingFallsBack) {
  World w;
  w.CreateWorkspace("plain", "Standard_NC24ads_A100_v4", "phi-3-mini-128k-instruct");
  w.ReconcileWorkspace("plain");
  auto claim = *w.claims_.ListShared("")[0];
  EXPECT_FALSE(claim.metadata().annotations().contains(kAnnotationCapacityFallback));
  v1::ProvisionedNode failed;
  failed.set_phase("Failed");
  failed.set_error_code("AllocationFailed");
  failed.set_retryable(true);
  w.provisioner_.SetNode(claim.metadata().name(), failed);
  w.ReconcileClaims();
  EXPECT_EQ(w.claims_.GetShared("", claim.metadata().name())->status().phase(), "Pending")
      << "retried after a backoff";
  w.ReconcileWorkspace("plain");
  EXPECT_TRUE(w.Get("plain").status().instance_type().empty());
}

TEST(WorkspaceReconcilerTest, ClaimNamesAreValidAgentPoolNamesAndStable) {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name("a-very-long-workspace-name-that-goes-on");
  ws.mutable_metadata()->set_namespace_("default");
  ws.mutable_metadata()->set_uid("u1");
  const std::string a = WorkspaceReconciler::ClaimName(ws, 0);
  EXPECT_THAT(a, ::testing::MatchesRegex("[a-z][a-z0-9]{0,11}"));
  EXPECT_EQ(a, WorkspaceReconciler::ClaimName(ws, 0));
  EXPECT_NE(a, WorkspaceReconciler::ClaimName(ws, 1));
  ws.mutable_metadata()->set_uid("u2");
  EXPECT_NE(a, WorkspaceReconciler::ClaimName(ws, 0)) << "a recreated workspace gets new claims";
}

}  // namespace
}  // namespace kaito::server
