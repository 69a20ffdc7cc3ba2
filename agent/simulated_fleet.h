// Simulated nodes: in-process agents with the simulated container runtime and the fake
// GPU probe, as many as needed in one process (no thread per agent: gRPC's callback API
// and the clock's timers drive them). Used by the simulated provisioner (dev mode,
// kaito-provisioner --provider simulated) and by the fleet benchmark. A simulation, and
// it says so in its logs.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "kaito/v1/node.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace kaito::agent {

class Agent;

struct SimulatedNodeSpec {
  std::string node_name;
  std::map<std::string, std::string> labels;
  std::string instance_type;
  std::string provider_id;
  std::vector<v1::Taint> taints;
  // The GPUs its fake probe reports.
  std::vector<v1::GpuInfo> gpus;
  // The control plane the agent dials (HOST:PORT).
  std::string server_address;
};

// Timing and faults of the simulated runtime of every node of the fleet.
struct SimulatedRuntimeOptions {
  absl::Duration pull_delay = absl::Milliseconds(500);
  absl::Duration start_delay = absl::Milliseconds(500);
  absl::Duration ready_delay = absl::Seconds(1);
  // How long a tuning job runs before it exits 0.
  absl::Duration job_duration = absl::Seconds(3);
};

class SimulatedFleet {
 public:
  SimulatedFleet(Clock* clock, SimulatedRuntimeOptions runtime);
  ~SimulatedFleet();  // Stops every agent.

  // Starts an agent for the node (it connects, and reconnects, on its own). ALREADY_EXISTS
  // when one runs for that name.
  absl::Status Start(const SimulatedNodeSpec& spec);
  // Stops the node's agent and forgets its workloads (the machine is gone). Idempotent.
  void Stop(const std::string& node_name);
  std::vector<std::string> Nodes();

 private:
  // What a node's agent uses, destroyed after the agent.
  struct NodeParts;
  struct SharedChannel {
    std::shared_ptr<grpc::Channel> channel;
    int agents = 0;
  };
  // A channel to `address` with room for one more agent.
  std::shared_ptr<grpc::Channel> AcquireChannelLocked(const std::string& address)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseChannelLocked(const std::string& address, const grpc::Channel* channel)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  const SimulatedRuntimeOptions runtime_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Agent>> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<NodeParts>> parts_ ABSL_GUARDED_BY(mu_);
  // Per server address; each channel carries up to `kAgentsPerChannel` streams.
  std::map<std::string, std::vector<SharedChannel>> channels_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::agent
