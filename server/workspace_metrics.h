// Workspace figures for /metrics, counted from the cache at scrape time: Kaito's own
// controller metrics, so that dashboards built for Kaito keep working
// (kaito_workspace_count{phase}, kaito_workspace_preset_count{preset_name}), and ours by
// state and kind (kaito_workspaces{kind,state}).
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <functional>
#include <string>
#include <vector>

#include "kaito/v1/node.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "server/registry/object_cache.h"

namespace kaito::server {

// Kaito's phase of a workspace: "deleting" (deletionTimestamp set), "succeeded" (state
// Ready or Succeeded), "error" (state Failed), else "pending".
std::string KaitoWorkspacePhase(const v1::Workspace& ws);

class WorkspaceCollector : public prometheus::Collectable {
 public:
  explicit WorkspaceCollector(ObjectCache* workspaces) : workspaces_(workspaces) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  ObjectCache* workspaces_;
};

// A node's state for metrics: "Ready", "NotReady" (its agent says so: an unhealthy GPU),
// "Unknown" (its lease lapsed) or "Lost" (past the grace: its workloads are placed again).
std::string NodeMetricState(const v1::Node& node);

// The fleet, counted from the caches at scrape time: node claims by phase
// (kaito_nodeclaims{phase}), nodes by state (kaito_nodes{state}), and the GPUs the agents
// report by model and health (kaito_gpus{model,healthy}), and the agents connected now
// (kaito_agent_sessions_connected, from `connected_agents`).
class FleetCollector : public prometheus::Collectable {
 public:
  FleetCollector(ObjectCache* nodes, ObjectCache* claims, std::function<size_t()> connected_agents)
      : nodes_(nodes), claims_(claims), connected_agents_(std::move(connected_agents)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  ObjectCache* nodes_;
  ObjectCache* claims_;
  std::function<size_t()> connected_agents_;
};

}  // namespace kaito::server
