// The control plane's objects in memory for component tests: every kind over a
// MemoryStore with its cache and registry, a fake clock, a fake provisioner, and the
// workspace and node claim reconcilers, driven by hand (no threads, no waiting).
#pragma once

#include <gtest/gtest.h>

#include "common/clock.h"
#include "presets/catalog.h"
#include "server/controllers/conditions.h"
#include "server/controllers/nodeclaim_reconciler.h"
#include "server/controllers/workspace_reconciler.h"
#include "server/provisioning/fake_provisioner_client.h"
#include "server/registry/cache_validation_context.h"
#include "server/registry/kinds/configmap_policy.h"
#include "server/registry/kinds/controller_kinds.h"
#include "server/registry/kinds/workspace_policy.h"
#include "server/registry/sync_writes.h"
#include "server/store/memory_store.h"

namespace kaito::server::testing {

// Every kind in memory, as ServerApp builds them (without the Kaito admission rules:
// these tests are about reconciliation).
class World {
 public:
  World()
      : catalog_(*presets::Catalog::Embedded()),
        workspace_cache_(&store_, "/workspaces/", &v1::Workspace::default_instance()),
        configmap_cache_(&store_, "/configmaps/", &v1::ConfigMap::default_instance()),
        node_cache_(&store_, "/nodes/", &v1::Node::default_instance()),
        claim_cache_(&store_, "/nodeclaims/", &v1::NodeClaim::default_instance()),
        workload_cache_(&store_, "/workloads/", &v1::Workload::default_instance()),
        event_cache_(&store_, "/events/", &v1::Event::default_instance()),
        workspaces_(WorkspacePolicy(), &store_, &workspace_cache_, &clock_),
        configmaps_(ConfigMapPolicy(), &store_, &configmap_cache_, &clock_),
        nodes_(NodePolicy(), &store_, &node_cache_, &clock_),
        claims_(NodeClaimPolicy(), &store_, &claim_cache_, &clock_),
        workloads_(WorkloadPolicy(), &store_, &workload_cache_, &clock_),
        events_(EventPolicy(), &store_, &event_cache_, &clock_),
        recorder_(&events_, &clock_, "test"),
        context_(&node_cache_, &configmap_cache_) {
    for (ObjectCache* c : {&workspace_cache_, &configmap_cache_, &node_cache_, &claim_cache_,
                           &workload_cache_, &event_cache_}) {
      EXPECT_TRUE(c->Start().ok());
    }
    objects_ = {&workspaces_, &nodes_, &claims_, &workloads_, &events_, &configmaps_};
    WorkspaceControllerOptions options;
    options.validation.node_auto_provisioning = true;
    options.claim_max_attempts = 2;
    options.on_offering_unavailable = [this](const presets::Offering& o) {
      unavailable_marked_.push_back(o.Key());
    };
    workspace_ = std::make_unique<WorkspaceReconciler>(objects_, &catalog_, &context_, &recorder_,
                                                       &clock_, options);
    NodeClaimControllerOptions claim_options;
    claim_options.max_attempts = 2;
    claim_options.retry_base = absl::Seconds(10);
    claim_options.agent_server = "127.0.0.1:1";
    claim_options.expected_gpus = [this](const std::string& type) {
      const presets::Sku* sku = catalog_.FindSku("azure", type);
      return sku == nullptr ? 0 : sku->gpu_count;
    };
    nodeclaim_ = std::make_unique<NodeClaimReconciler>(
        objects_, &provisioner_, &recorder_, &clock_, claim_options,
        [this](const std::string& key) { enqueued_claims_.push_back(key); });
  }

  v1::Workspace CreateWorkspace(const std::string& name, const std::string& instance_type,
                                const std::string& preset) {
    v1::Workspace ws;
    ws.mutable_metadata()->set_name(name);
    ws.mutable_resource()->set_instance_type(instance_type);
    (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["app"] = name;
    ws.mutable_inference()->mutable_preset()->set_name(preset);
    auto created = CreateSync(workspaces_, ws);
    EXPECT_TRUE(created.ok()) << created.status();
    return created.ok() ? created->object : ws;
  }

  ReconcileResult ReconcileWorkspace(const std::string& name) {
    auto r = workspace_->Reconcile("default/" + name);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(ReconcileResult::Done());
  }
  void ReconcileClaims() {
    for (const auto& c : claims_.ListShared("")) {
      auto r = nodeclaim_->Reconcile(c->metadata().name());
      EXPECT_TRUE(r.ok()) << r.status();
    }
  }
  v1::Workspace Get(const std::string& name) { return *workspaces_.GetShared("default", name); }

  // What an agent's Hello does for a claim's node: a Ready node with the claim's labels and
  // `gpus` healthy GPUs (-1: as many as its instance type has).
  void RegisterNode(const v1::NodeClaim& claim, const std::string& node_name, int gpus = -1) {
    if (gpus < 0) {
      const presets::Sku* sku = catalog_.FindSku("azure", claim.spec().instance_type());
      gpus = sku == nullptr ? 0 : sku->gpu_count;
    }
    v1::Node node;
    node.mutable_metadata()->set_name(node_name);
    for (const auto& [k, v] : claim.spec().labels())
      (*node.mutable_metadata()->mutable_labels())[k] = v;
    (*node.mutable_metadata()->mutable_annotations())[kAnnotationAgentManaged] = "true";
    node.mutable_spec()->set_node_claim(claim.metadata().name());
    node.mutable_spec()->set_instance_type(claim.spec().instance_type());
    SetCondition(node.mutable_status()->mutable_conditions(), "Ready", true, "AgentReady", "", 0,
                 clock_.Now());
    for (int i = 0; i < gpus; ++i) {
      v1::GpuInfo* gpu = node.mutable_status()->add_gpus();
      gpu->set_uuid(node_name + "-gpu-" + std::to_string(i));
      gpu->set_model("NVIDIA A100 80GB PCIe");
      gpu->set_memory_bytes(int64_t{80} << 30);
      gpu->set_healthy(true);
    }
    ASSERT_TRUE(CreateSync(nodes_, node).ok());
  }

  // Brings the first claim's node up: the provisioner reports it Running as `node`, the
  // claim controller records it, and its agent registers it.
  void BringUpNode(const std::string& node) {
    auto claim = *claims_.ListShared("")[0];
    v1::ProvisionedNode running;
    running.set_phase("Running");
    running.set_node_name(node);
    provisioner_.SetNode(claim.metadata().name(), running);
    ReconcileClaims();
    ReconcileClaims();
    RegisterNode(claim, node);
  }

  // What an agent's report does.
  void ReportWorkload(const std::string& name, const std::string& phase,
                      const std::string& reason = "") {
    auto w = workloads_.GetShared("default", name);
    ASSERT_NE(w, nullptr);
    v1::Workload update = *w;
    update.mutable_status()->set_phase(phase);
    update.mutable_status()->set_reason(reason);
    update.mutable_status()->set_observed_generation(w->metadata().generation());
    if (phase == "Ready") update.mutable_status()->set_endpoint("10.0.0.1:5000");
    ASSERT_TRUE(UpdateStatusSync(workloads_, update).ok());
  }

  std::vector<std::string> EventReasons() {
    std::vector<std::string> out;
    for (const auto& e : events_.ListShared("")) out.push_back(e->reason());
    return out;
  }

  FakeClock clock_;
  store::MemoryStore store_;
  presets::Catalog catalog_;
  ObjectCache workspace_cache_, configmap_cache_, node_cache_, claim_cache_, workload_cache_,
      event_cache_;
  ObjectRegistry<v1::Workspace> workspaces_;
  ObjectRegistry<v1::ConfigMap> configmaps_;
  ObjectRegistry<v1::Node> nodes_;
  ObjectRegistry<v1::NodeClaim> claims_;
  ObjectRegistry<v1::Workload> workloads_;
  ObjectRegistry<v1::Event> events_;
  EventRecorder recorder_;
  CacheValidationContext context_;
  ControlPlaneObjects objects_;
  FakeProvisionerClient provisioner_;
  std::unique_ptr<WorkspaceReconciler> workspace_;
  std::unique_ptr<NodeClaimReconciler> nodeclaim_;
  std::vector<std::string> enqueued_claims_;
  // Offerings capacity fallback marked unavailable, in order (the metrics' feed).
  std::vector<std::string> unavailable_marked_;
};

}  // namespace kaito::server::testing
