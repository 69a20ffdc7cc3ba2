// One node's agent: the session with kaito-server (NodeService.Connect) and the node's
// workload supervisor. Event-driven: no thread of its own, so that one process can host
// thousands (gRPC's callback API, the clock's timers and the runtime's callbacks drive it).
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/agent_metrics.h"
#include "agent/gpu/gpu_probe.h"
#include "agent/runtime/container_runtime.h"
#include "agent/supervisor/workload_supervisor.h"
#include "agent/work_serializer.h"
#include "common/clock.h"
#include "kaito/v1/agent.pb.h"
#include "kaito/v1/node.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace kaito::agent {

struct AgentOptions {
  std::string node_name;
  std::map<std::string, std::string> labels;
  std::string instance_type;
  std::string provider_id;
  std::vector<v1::Taint> taints;
  // Host or IP where the node's workloads answer (the host part of their endpoints).
  std::string address = "127.0.0.1";
  // The server, HOST:PORT; ignored when `channel` is set (a fleet shares a few channels).
  std::string server_address;
  std::shared_ptr<grpc::Channel> channel;
  // Reconnect delay: uniform in [0, min(cap, base * 2^attempt)) ("full jitter"); the attempt
  // count starts again after a Welcome.
  absl::Duration reconnect_backoff_base = absl::Seconds(1);
  absl::Duration reconnect_backoff_cap = absl::Seconds(30);
  absl::Duration gpu_probe_interval = absl::Seconds(30);
  // A session without a Welcome by then is cancelled and dialled again.
  absl::Duration welcome_timeout = absl::Seconds(30);
  // When the Welcome names no heartbeat interval.
  absl::Duration default_heartbeat_interval = absl::Seconds(10);
  // Supervision; its `node_name` and `node_address` are taken from the fields above.
  WorkloadSupervisorOptions supervisor;
  // Not owned; may be null.
  AgentMetrics* metrics = nullptr;
  // Seed of the reconnect jitter; 0 picks one at random.
  uint64_t jitter_seed = 0;
};

// A channel for agents: its own connection (not shared with other channels to the same
// address), keepalive every 5 minutes, reconnect backoff 1 s to 30 s. Insecure for now.
std::shared_ptr<grpc::Channel> CreateAgentChannel(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials());

struct AgentState {
  // The runtime's containers have been listed and adopted.
  bool recovered = false;
  // A stream is open / has its Welcome.
  bool connected = false;
  bool welcomed = false;
  int64_t sessions = 0;
  // Heartbeats queued for the server, and the sequence of the last one.
  int64_t heartbeats_sent = 0;
  int64_t heartbeat_sequence = 0;
  int64_t lease_ttl_ms = 0;
  int64_t heartbeat_interval_ms = 0;
  std::string node_uid;
  // The generation of the last desired set applied, or -1.
  int64_t desired_generation = -1;
  // How the last session ended, when it did.
  std::string last_error;
};

// The protocol (kaito/v1/agent.proto): at every (re)connect an AgentHello with the inventory
// and what runs; after the Welcome a Heartbeat every interval (sequence increasing over the
// agent's life); a GpuReport when a re-probe finds the GPUs changed; a WorkloadReport whenever
// a workload's status changes. Each DesiredWorkloads goes to the supervisor (a new session
// accepts whatever generation comes first). Writes are queued, one in flight; queued
// heartbeats, GPU reports and reports of the same workload are coalesced, latest wins. A
// stream that ends is dialled again with backoff; workloads keep running meanwhile.
//
// `clock`, `probe` and `runtime` are not owned and must outlive the agent. All state is owned
// by one strand (`WorkSerializer`) that gRPC reactions, timers and runtime callbacks post to.
class Agent {
 public:
  Agent(AgentOptions options, Clock* clock, GpuProbe* probe, ContainerRuntime* runtime);
  // Stops, and waits until the stream's reactor is done.
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Adopts the runtime's containers (retried with backoff while the runtime fails), then
  // connects. Call once. Returns at once; the listing completes when the runtime answers (a
  // simulated runtime answers on its clock: with a `FakeClock`, advance it, even by zero).
  void Start();
  // Ends the session and cancels every timer; containers keep running. Idempotent. Waits for
  // the reactor's OnDone, so call it neither from a gRPC reaction nor from a clock timer of
  // this agent.
  void Stop();

  const std::string& node_name() const { return options_.node_name; }
  // Thread-safe snapshots.
  AgentState state();
  std::vector<v1::WorkloadReport> workloads();
  // The GPUs of the last probe (empty before the first, or when it failed).
  std::vector<v1::GpuInfo> gpus();

 private:
  class Session;
  struct SessionTracker;

  // Runs `fn` on the strand after `delay`.
  Clock::TimerId Arm(absl::Duration delay, absl::AnyInvocable<void()> fn);
  void CancelTimer(Clock::TimerId& id);
  // All on the strand.
  void Recover();
  void Connect();
  void OnServerMessage(uint64_t session, const v1::ServerMessage& message);
  void OnSessionDone(uint64_t session, const std::string& error);
  void SendHeartbeat();
  void ProbeTick();
  std::vector<v1::GpuInfo> ProbeGpus();
  void OnWorkloadChange(const v1::WorkloadReport& report);
  absl::Duration NextBackoff();
  void PublishState();

  const AgentOptions options_;
  Clock* const clock_;
  GpuProbe* const probe_;
  ContainerRuntime* const runtime_;
  std::shared_ptr<grpc::Channel> channel_;
  const std::shared_ptr<WorkSerializer> strand_ = std::make_shared<WorkSerializer>();
  const std::shared_ptr<SessionTracker> tracker_;
  std::unique_ptr<WorkloadSupervisor> supervisor_;

  absl::Mutex stop_mu_;
  bool stop_called_ ABSL_GUARDED_BY(stop_mu_) = false;

  // Strand state.
  std::unique_ptr<Session> stream_;
  uint64_t sessions_ = 0;
  bool recovered_ = false;
  bool welcomed_ = false;
  absl::Duration dialled_at_;
  int64_t heartbeat_sequence_ = 0;
  int64_t heartbeats_sent_ = 0;
  int attempt_ = 0;
  std::mt19937_64 jitter_;
  std::string last_gpus_;
  // Workload uid -> the restart count last reported (for kaito_agent_container_restarts_total).
  std::map<std::string, int> last_restarts_;
  std::string last_probe_error_;
  v1::Welcome welcome_;
  std::string last_error_;
  Clock::TimerId recover_timer_ = 0;
  Clock::TimerId reconnect_timer_ = 0;
  Clock::TimerId welcome_timer_ = 0;
  Clock::TimerId heartbeat_timer_ = 0;
  Clock::TimerId probe_timer_ = 0;

  absl::Mutex state_mu_;
  AgentState state_ ABSL_GUARDED_BY(state_mu_);
  std::vector<v1::WorkloadReport> reports_ ABSL_GUARDED_BY(state_mu_);
  std::vector<v1::GpuInfo> probed_gpus_ ABSL_GUARDED_BY(state_mu_);
};

}  // namespace kaito::agent
