// The seam between a provider that "creates" a machine and whatever makes that machine
// join the control plane: for the simulated cloud, an in-process simulated agent
// (`FleetBootstrapper`); for tests, `FakeBootstrapper`. A real cloud needs none: the
// machine's own agent starts from its boot configuration.
//
// Calls are made by the provider from its clock's timer callbacks, never with the
// provider's lock held; implementations must return quickly (start, do not wait).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kaito/v1/node.pb.h"

namespace kaito::provisioner {

// Everything the agent of a new node needs to register as that node.
struct BootstrapSpec {
  std::string node_name;
  // The claim's labels plus `node.kubernetes.io/instance-type` and `kaito.sh/nodeclaim`.
  std::map<std::string, std::string> labels;
  std::string instance_type;
  std::string provider_id;
  std::vector<v1::Taint> taints;
  // The GPUs the node's probe reports (from the SKU catalog for simulated nodes).
  std::vector<v1::GpuInfo> gpus;
  // The control plane address HOST:PORT the agent dials.
  std::string agent_server;
};

class NodeBootstrapper {
 public:
  virtual ~NodeBootstrapper() = default;
  // Starts the node's agent. Idempotent by node name: starting a node that runs is OK.
  // An error leaves nothing running; the provider reports the create as Failed.
  virtual absl::Status StartNode(const BootstrapSpec& spec) = 0;
  // Stops the node's agent (the machine is gone). Idempotent; unknown names are ignored.
  virtual void StopNode(const std::string& node_name) = 0;
};

}  // namespace kaito::provisioner
