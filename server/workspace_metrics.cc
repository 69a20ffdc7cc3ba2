#include "server/workspace_metrics.h"

#include <map>
#include <utility>

#include "common/metric_families.h"
#include "kaito/v1/nodeclaim.pb.h"
#include "server/controllers/conditions.h"

namespace kaito::server {
namespace {

// One series per key, in key order.
std::vector<std::pair<MetricLabels, double>> Series(const std::map<MetricLabels, double>& counts) {
  return {counts.begin(), counts.end()};
}

}  // namespace

std::string KaitoWorkspacePhase(const v1::Workspace& ws) {
  if (ws.metadata().has_deletion_timestamp()) return "deleting";
  const std::string& state = ws.status().state();
  if (state == "Ready" || state == "Succeeded") return "succeeded";
  if (state == "Failed") return "error";
  return "pending";
}

std::vector<prometheus::MetricFamily> WorkspaceCollector::Collect() const {
  // Every phase is present, 0 included, as Kaito's gauge vector has them once seen.
  std::map<MetricLabels, double> phases = {{{{"phase", "deleting"}}, 0},
                                           {{{"phase", "error"}}, 0},
                                           {{{"phase", "pending"}}, 0},
                                           {{{"phase", "succeeded"}}, 0}};
  std::map<MetricLabels, double> presets, states;
  // The filter sees every workspace and keeps none: nothing is copied.
  workspaces_->List("", "", 0, [&](const google::protobuf::Message& m) {
    const auto& ws = static_cast<const v1::Workspace&>(m);
    phases[{{"phase", KaitoWorkspacePhase(ws)}}] += 1;
    const bool tuning = ws.has_tuning();
    const std::string& preset =
        tuning ? ws.tuning().preset().name() : ws.inference().preset().name();
    if (!preset.empty()) presets[{{"preset_name", preset}}] += 1;
    const std::string state = ws.status().state().empty() ? "Pending" : ws.status().state();
    states[{{"kind", tuning ? "tuning" : "inference"}, {"state", state}}] += 1;
    return false;
  });
  return {GaugeFamily("kaito_workspace_count", "Workspaces by Kaito's phase.", Series(phases)),
          GaugeFamily("kaito_workspace_preset_count", "Workspaces by preset.", Series(presets)),
          GaugeFamily("kaito_workspaces", "Workspaces by kind (inference, tuning) and state.",
                      Series(states))};
}

std::string NodeMetricState(const v1::Node& node) {
  const v1::Condition* ready = FindCondition(node.status().conditions(), "Ready");
  if (ready != nullptr && ready->status() == "True") return "Ready";
  if (ready != nullptr && ready->reason() == "NodeLost") return "Lost";
  if (ready != nullptr && ready->reason() == "NodeStatusUnknown") return "Unknown";
  return "NotReady";
}

std::vector<prometheus::MetricFamily> FleetCollector::Collect() const {
  std::map<MetricLabels, double> phases = {{{{"phase", "Pending"}}, 0},
                                           {{{"phase", "Launching"}}, 0},
                                           {{{"phase", "Registered"}}, 0},
                                           {{{"phase", "Ready"}}, 0},
                                           {{{"phase", "Failed"}}, 0}};
  claims_->List("", "", 0, [&](const google::protobuf::Message& m) {
    const auto& claim = static_cast<const v1::NodeClaim&>(m);
    const std::string& phase = claim.status().phase();
    phases[{{"phase", phase.empty() ? "Pending" : phase}}] += 1;
    return false;
  });
  std::map<MetricLabels, double> states = {{{{"state", "Ready"}}, 0},
                                           {{{"state", "NotReady"}}, 0},
                                           {{{"state", "Unknown"}}, 0},
                                           {{{"state", "Lost"}}, 0}};
  std::map<MetricLabels, double> gpus;
  nodes_->List("", "", 0, [&](const google::protobuf::Message& m) {
    const auto& node = static_cast<const v1::Node&>(m);
    states[{{"state", NodeMetricState(node)}}] += 1;
    for (const v1::GpuInfo& gpu : node.status().gpus()) {
      gpus[{{"healthy", gpu.healthy() ? "true" : "false"}, {"model", gpu.model()}}] += 1;
    }
    return false;
  });
  return {GaugeFamily("kaito_nodeclaims", "Node claims by phase.", Series(phases)),
          GaugeFamily("kaito_nodes", "Nodes by state (Ready, NotReady, Unknown, Lost).",
                      Series(states)),
          GaugeFamily("kaito_gpus", "GPUs the agents report, by model and health.", Series(gpus)),
          GaugeFamily("kaito_agent_sessions_connected",
                      "Agents whose session with this server is open now.",
                      {{{}, static_cast<double>(connected_agents_())}})};
}

}  // namespace kaito::server
