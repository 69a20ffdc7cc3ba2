#include "agent/agent_metrics.h"

#include <string>

namespace kaito::agent {
AgentMetrics::AgentMetrics(prometheus::Registry& registry)
    : phase_family_(prometheus::BuildCounter()
                        .Name("kaito_agent_workload_phase_changes_total")
                        .Help("Workload status changes reported, by the phase moved to.")
                        .Register(registry)) {
  auto& sessions = prometheus::BuildCounter()
                       .Name("kaito_agent_sessions_total")
                       .Help("Agent sessions (NodeService.Connect streams), by event.")
                       .Register(registry);
  sessions_started_ = &sessions.Add({{"event", "started"}});
  sessions_ended_ = &sessions.Add({{"event", "ended"}});
  sessions_welcomed_ = &prometheus::BuildGauge()
                            .Name("kaito_agent_sessions_welcomed")
                            .Help("Agent sessions that have received the server's Welcome.")
                            .Register(registry)
                            .Add({});
  welcome_latency_ =
      &prometheus::BuildHistogram()
           .Name("kaito_agent_welcome_latency_seconds")
           .Help("Time from dialling the server to receiving its Welcome.")
           .Register(registry)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                            0.1, 0.25, 0.5, 1, 2.5, 5, 10});
  auto& sent = prometheus::BuildCounter()
                   .Name("kaito_agent_messages_sent_total")
                   .Help("Messages written to the server, by type.")
                   .Register(registry);
  hello_ = &sent.Add({{"type", "hello"}});
  heartbeat_ = &sent.Add({{"type", "heartbeat"}});
  gpus_ = &sent.Add({{"type", "gpus"}});
  workload_ = &sent.Add({{"type", "workload"}});
  auto& desired = prometheus::BuildCounter()
                      .Name("kaito_agent_desired_sets_total")
                      .Help("Desired workload sets received, by outcome.")
                      .Register(registry);
  desired_applied_ = &desired.Add({{"outcome", "applied"}});
  desired_ignored_ = &desired.Add({{"outcome", "ignored_old_generation"}});
  restarts_ = &prometheus::BuildCounter()
                   .Name("kaito_agent_container_restarts_total")
                   .Help("Restarts of crashed inference containers made by this agent process.")
                   .Register(registry)
                   .Add({});
  auto& moved = prometheus::BuildCounter()
                    .Name("kaito_agent_data_bytes_total")
                    .Help("Bytes the agent moved itself for tuning jobs, by direction.")
                    .Register(registry);
  downloaded_ = &moved.Add({{"direction", "downloaded"}});
  pushed_ = &moved.Add({{"direction", "pushed"}});
  auto& probes = prometheus::BuildHistogram()
                     .Name("kaito_agent_readiness_probe_duration_seconds")
                     .Help("The agent's HTTP readiness probes of containers, by result.")
                     .Register(registry);
  const prometheus::Histogram::BucketBoundaries probe_buckets{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
  probe_passed_ = &probes.Add({{"result", "passed"}}, probe_buckets);
  probe_failed_ = &probes.Add({{"result", "failed"}}, probe_buckets);
  for (size_t i = 0; i < 8; ++i) phases_[i] = &phase_family_.Add({{"phase", kWorkloadPhases[i]}});
}

prometheus::Counter& AgentMetrics::workload_phase(const std::string& phase) {
  for (size_t i = 0; i < 7; ++i) {
    if (phase == kWorkloadPhases[i]) return *phases_[i];
  }
  return *phases_[7];
}

}  // namespace kaito::agent
