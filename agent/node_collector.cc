#include "agent/node_collector.h"

#include <map>
#include <string>

#include "agent/agent_metrics.h"
#include "common/metric_families.h"

namespace kaito::agent {
std::vector<prometheus::MetricFamily> NodeCollector::Collect() const {
  std::vector<std::pair<MetricLabels, double>> total, used, utilization, temperature, power,
      healthy;
  for (const v1::GpuInfo& gpu : agent_->gpus()) {
    const MetricLabels labels = {{"gpu", gpu.uuid()}, {"model", gpu.model()}};
    total.push_back({labels, static_cast<double>(gpu.memory_bytes())});
    used.push_back({labels, static_cast<double>(gpu.memory_used_bytes())});
    utilization.push_back({labels, gpu.utilization_percent() / 100.0});
    temperature.push_back({labels, static_cast<double>(gpu.temperature_celsius())});
    power.push_back({labels, static_cast<double>(gpu.power_watts())});
    healthy.push_back({labels, gpu.healthy() ? 1.0 : 0.0});
  }
  std::map<std::string, double> phases;
  for (const char* phase : kWorkloadPhases) phases[phase] = 0;
  for (const v1::WorkloadReport& report : agent_->workloads()) {
    const std::string& phase = report.status().phase();
    phases[phases.contains(phase) ? phase : "other"] += 1;
  }
  std::vector<std::pair<MetricLabels, double>> workloads;
  for (const auto& [phase, count] : phases) workloads.push_back({{{"phase", phase}}, count});
  return {
      GaugeFamily("kaito_agent_gpu_memory_bytes", "A GPU's memory.", total),
      GaugeFamily("kaito_agent_gpu_memory_used_bytes", "A GPU's memory in use.", used),
      GaugeFamily("kaito_agent_gpu_utilization_ratio", "A GPU's utilisation, 0 to 1.", utilization),
      GaugeFamily("kaito_agent_gpu_temperature_celsius", "A GPU's temperature.", temperature),
      GaugeFamily("kaito_agent_gpu_power_watts", "A GPU's power draw.", power),
      GaugeFamily("kaito_agent_gpu_healthy", "1 while a GPU is healthy, else 0.", healthy),
      GaugeFamily("kaito_agent_workloads", "Workloads on this node by phase.", workloads)};
}

}  // namespace kaito::agent
