// Starts a simulated agent (`agent::SimulatedFleet`) for each node the simulated cloud
// "creates", so that the node registers with the control plane as a real one would.
// Kept out of `kaito_provisioner_lib` so that the provider and services do not link the
// agent.
#pragma once

#include <string>

#include "agent/simulated_fleet.h"
#include "provisioner/provider/node_bootstrapper.h"

namespace kaito::provisioner {

class FleetBootstrapper : public NodeBootstrapper {
 public:
  // `fleet` must outlive this object.
  explicit FleetBootstrapper(agent::SimulatedFleet* fleet) : fleet_(fleet) {}

  // INVALID_ARGUMENT without `agent_server` (the agent would have nowhere to register);
  // a node whose agent already runs is OK.
  absl::Status StartNode(const BootstrapSpec& spec) override;
  void StopNode(const std::string& node_name) override;

 private:
  agent::SimulatedFleet* const fleet_;
};

}  // namespace kaito::provisioner
