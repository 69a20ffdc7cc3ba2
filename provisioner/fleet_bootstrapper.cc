#include "provisioner/fleet_bootstrapper.h"

namespace kaito::provisioner {

absl::Status FleetBootstrapper::StartNode(const BootstrapSpec& spec) {
  if (spec.agent_server.empty()) {
    return absl::InvalidArgumentError("node " + spec.node_name +
                                      ": no control plane address (agent_server) to register "
                                      "with");
  }
  agent::SimulatedNodeSpec node;
  node.node_name = spec.node_name;
  node.labels = spec.labels;
  node.instance_type = spec.instance_type;
  node.provider_id = spec.provider_id;
  node.taints = spec.taints;
  node.gpus = spec.gpus;
  node.server_address = spec.agent_server;
  absl::Status status = fleet_->Start(node);
  if (absl::IsAlreadyExists(status)) return absl::OkStatus();
  return status;
}

void FleetBootstrapper::StopNode(const std::string& node_name) { fleet_->Stop(node_name); }

}  // namespace kaito::provisioner
