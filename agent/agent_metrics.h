// Prometheus series of the agent's session loop, shared by every agent of a process (the
// kaito-agent binary has one; a simulated fleet may share one among thousands, so no series
// is per node).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace kaito::agent {

// The workload phases the agent's series are labelled with; "other" for anything else.
inline constexpr const char* kWorkloadPhases[] = {"Pending", "Pulling",   "Starting", "Running",
                                                  "Ready",   "Succeeded", "Failed",   "other"};

// Thread-safe; the series are resolved once, so recording takes no lock.
class AgentMetrics {
 public:
  explicit AgentMetrics(prometheus::Registry& registry);

  // Streams dialled, and streams that ended (any cause), since start.
  prometheus::Counter& sessions_started() { return *sessions_started_; }
  prometheus::Counter& sessions_ended() { return *sessions_ended_; }
  // Sessions that have their Welcome right now.
  prometheus::Gauge& sessions_welcomed() { return *sessions_welcomed_; }
  // Dial to Welcome.
  prometheus::Histogram& welcome_latency() { return *welcome_latency_; }
  prometheus::Counter& hello_sent() { return *hello_; }
  prometheus::Counter& heartbeats_sent() { return *heartbeat_; }
  prometheus::Counter& gpu_reports_sent() { return *gpus_; }
  prometheus::Counter& workload_reports_sent() { return *workload_; }
  // Desired sets applied, and ignored because their generation was not newer.
  prometheus::Counter& desired_applied() { return *desired_applied_; }
  prometheus::Counter& desired_ignored() { return *desired_ignored_; }
  // Workload status changes by the phase they moved to.
  prometheus::Counter& workload_phase(const std::string& phase);
  // Restarts of crashed containers this process made.
  prometheus::Counter& container_restarts() { return *restarts_; }
  // Bytes the agent moved itself for tuning jobs: downloaded inputs, pushed outputs.
  prometheus::Counter& data_bytes(bool pushed) { return pushed ? *pushed_ : *downloaded_; }
  // The agent's own HTTP readiness probes (Docker runtime), by result.
  prometheus::Histogram& readiness_probe(bool passed) {
    return passed ? *probe_passed_ : *probe_failed_;
  }

 private:
  prometheus::Family<prometheus::Counter>& phase_family_;
  prometheus::Counter* sessions_started_;
  prometheus::Counter* sessions_ended_;
  prometheus::Gauge* sessions_welcomed_;
  prometheus::Histogram* welcome_latency_;
  prometheus::Counter* hello_;
  prometheus::Counter* heartbeat_;
  prometheus::Counter* gpus_;
  prometheus::Counter* workload_;
  prometheus::Counter* desired_applied_;
  prometheus::Counter* desired_ignored_;
  prometheus::Counter* restarts_;
  prometheus::Counter* downloaded_;
  prometheus::Counter* pushed_;
  prometheus::Histogram* probe_passed_;
  prometheus::Histogram* probe_failed_;
  // Pending, Pulling, Starting, Running, Ready, Succeeded, Failed, other.
  prometheus::Counter* phases_[8];
};

}  // namespace kaito::agent
