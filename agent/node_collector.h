// Prometheus series of one node, for the kaito-agent binary.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <vector>

#include "agent/agent.h"

namespace kaito::agent {

// One node's figures, read from its agent at scrape time (only kaito-agent registers it: a
// simulated fleet of thousands keeps no per-GPU series): per GPU (labels gpu = UUID, model)
// kaito_agent_gpu_memory_bytes, _memory_used_bytes, _utilization_ratio (0..1),
// _temperature_celsius, _power_watts and _healthy (1 or 0); and kaito_agent_workloads{phase}.
class NodeCollector : public prometheus::Collectable {
 public:
  explicit NodeCollector(Agent* agent) : agent_(agent) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  Agent* agent_;
};

}  // namespace kaito::agent
