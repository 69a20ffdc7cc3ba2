#include "agent/simulated_fleet.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/gpu/fake_gpu_probe.h"
#include "agent/runtime/simulated_runtime.h"

namespace kaito::agent {
namespace {

// HTTP/2 servers allow 100 concurrent streams per connection by default.
constexpr int kAgentsPerChannel = 100;

// A GPU given with `healthy` false and no reason is taken as healthy: proto3 cannot tell an
// unset flag from false, and a fake GPU that is meant to be unhealthy says why.
std::vector<v1::GpuInfo> FleetGpus(std::vector<v1::GpuInfo> gpus) {
  for (v1::GpuInfo& gpu : gpus) {
    if (!gpu.healthy() && gpu.health_reason().empty()) gpu.set_healthy(true);
  }
  return gpus;
}

}  // namespace

struct SimulatedFleet::NodeParts {
  std::unique_ptr<FakeGpuProbe> probe;
  std::unique_ptr<SimulatedRuntime> runtime;
  std::string server_address;
  const grpc::Channel* channel = nullptr;
};

SimulatedFleet::SimulatedFleet(Clock* clock, SimulatedRuntimeOptions runtime)
    : clock_(clock), runtime_(runtime) {
  spdlog::warn(
      "simulated fleet: its nodes, GPUs and containers are a SIMULATION (nothing runs; phases "
      "advance on timers: pull {}, start {}, ready {}, job {})",
      absl::FormatDuration(runtime_.pull_delay), absl::FormatDuration(runtime_.start_delay),
      absl::FormatDuration(runtime_.ready_delay), absl::FormatDuration(runtime_.job_duration));
}

SimulatedFleet::~SimulatedFleet() {
  std::map<std::string, std::unique_ptr<Agent>> agents;
  std::map<std::string, std::unique_ptr<NodeParts>> parts;
  {
    absl::MutexLock lock(&mu_);
    agents.swap(agents_);
    parts.swap(parts_);
    channels_.clear();
  }
  // Every agent stops before the runtimes and probes it uses go.
  for (auto& [name, agent] : agents) agent->Stop();
  agents.clear();
  parts.clear();
}

std::shared_ptr<grpc::Channel> SimulatedFleet::AcquireChannelLocked(const std::string& address) {
  std::vector<SharedChannel>& pool = channels_[address];
  for (SharedChannel& shared : pool) {
    if (shared.agents < kAgentsPerChannel) {
      ++shared.agents;
      return shared.channel;
    }
  }
  pool.push_back({CreateAgentChannel(address), 1});
  return pool.back().channel;
}

void SimulatedFleet::ReleaseChannelLocked(const std::string& address,
                                          const grpc::Channel* channel) {
  auto it = channels_.find(address);
  if (it == channels_.end()) return;
  for (auto shared = it->second.begin(); shared != it->second.end(); ++shared) {
    if (shared->channel.get() != channel) continue;
    if (--shared->agents == 0) it->second.erase(shared);
    break;
  }
  if (it->second.empty()) channels_.erase(it);
}

absl::Status SimulatedFleet::Start(const SimulatedNodeSpec& spec) {
  if (spec.node_name.empty()) return absl::InvalidArgumentError("simulated node without a name");
  if (spec.server_address.empty()) {
    return absl::InvalidArgumentError("simulated node " + spec.node_name +
                                      " has no server address");
  }
  absl::MutexLock lock(&mu_);
  if (agents_.count(spec.node_name) > 0) {
    return absl::AlreadyExistsError("a simulated agent runs for node " + spec.node_name);
  }
  auto parts = std::make_unique<NodeParts>();
  parts->probe = std::make_unique<FakeGpuProbe>(FleetGpus(spec.gpus), spec.node_name);
  SimulatedRuntime::Options runtime;
  runtime.pull_delay = runtime_.pull_delay;
  runtime.start_delay = runtime_.start_delay;
  runtime.ready_delay = runtime_.ready_delay;
  runtime.job_duration = runtime_.job_duration;
  parts->runtime = std::make_unique<SimulatedRuntime>(clock_, std::move(runtime));
  parts->server_address = spec.server_address;

  AgentOptions options;
  options.node_name = spec.node_name;
  options.labels = spec.labels;
  options.instance_type = spec.instance_type;
  options.provider_id = spec.provider_id;
  options.taints = spec.taints;
  options.server_address = spec.server_address;
  options.channel = AcquireChannelLocked(spec.server_address);
  parts->channel = options.channel.get();
  auto agent =
      std::make_unique<Agent>(std::move(options), clock_, parts->probe.get(), parts->runtime.get());
  // Start only posts work: no callback of the agent runs into the fleet.
  agent->Start();
  agents_[spec.node_name] = std::move(agent);
  parts_[spec.node_name] = std::move(parts);
  return absl::OkStatus();
}

void SimulatedFleet::Stop(const std::string& node_name) {
  std::unique_ptr<Agent> agent;
  std::unique_ptr<NodeParts> parts;
  {
    absl::MutexLock lock(&mu_);
    auto a = agents_.find(node_name);
    if (a == agents_.end()) return;
    agent = std::move(a->second);
    agents_.erase(a);
    auto p = parts_.find(node_name);
    if (p != parts_.end()) {
      parts = std::move(p->second);
      parts_.erase(p);
      ReleaseChannelLocked(parts->server_address, parts->channel);
    }
  }
  // Outside the lock: stopping waits for the stream's end. The machine is gone, and its
  // workloads with it (the runtime goes after the agent).
  agent.reset();
  parts.reset();
}

std::vector<std::string> SimulatedFleet::Nodes() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> names;
  names.reserve(agents_.size());
  for (const auto& [name, agent] : agents_) names.push_back(name);
  return names;
}

}  // namespace kaito::agent
