// The server's side of one agent's session (NodeService.Connect), without gRPC: it
// checks every message, registers the node, renews its lease, records workload status
// and sends the desired workloads (proto/kaito/v1/agent.proto is the contract).
//
// Threading: `OnMessage` and `OnStreamEnd` are called by the transport one at a time;
// `SendDesired` and `Close` may come from any thread (the session registry's flush).
// Store writes are asynchronous; nothing here blocks.
//
// Bad input: a message that breaks the protocol (no Hello first, a second Hello, fields
// out of bounds) closes the session with INVALID_ARGUMENT and changes nothing. A report
// for a workload that is not placed on this node is rejected, logged and counted, and the
// session goes on.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "kaito/v1/agent.pb.h"
#include "server/agents/lease_tracker.h"
#include "server/auth/authorizer.h"
#include "server/agents/session_registry.h"
#include "server/controllers/event_recorder.h"
#include "server/controllers/objects.h"

namespace kaito::server {

class WorkloadStatusWriter;

struct AgentSessionOptions {
  absl::Duration lease_ttl = absl::Seconds(20);
  absl::Duration heartbeat_interval = absl::Seconds(5);
};

// Counters shared by every session (exported as metrics by the server).
struct AgentSessionStats {
  std::atomic<int64_t> hellos{0};
  std::atomic<int64_t> heartbeats{0};
  std::atomic<int64_t> reports{0};
  std::atomic<int64_t> rejected_reports{0};
  std::atomic<int64_t> protocol_errors{0};
};

struct AgentSessionDeps {
  ControlPlaneObjects objects;
  // Who may connect and read; null: everyone (tests).
  Authorizer* auth = nullptr;
  LeaseTracker* leases = nullptr;
  SessionRegistry* sessions = nullptr;
  EventRecorder* events = nullptr;
  Clock* clock = nullptr;
  AgentSessionStats* stats = nullptr;
  std::shared_ptr<WorkloadStatusWriter> status_writer;
  AgentSessionOptions options;
};

// Writes workload statuses reported by agents so that the newest report wins: one write
// in flight per workload, and a report that arrives meanwhile replaces any other waiting
// one (asynchronous writes that raced could otherwise land out of order and leave an
// older phase stored). Shared by the sessions; outlives any one of them.
class WorkloadStatusWriter : public std::enable_shared_from_this<WorkloadStatusWriter> {
 public:
  explicit WorkloadStatusWriter(ObjectRegistry<v1::Workload>* workloads) : workloads_(workloads) {}
  // `update` is the stored workload with the reported status.
  void Write(v1::Workload update);

 private:
  void Start(const std::string& key, v1::Workload update);
  void Done(const std::string& key);

  ObjectRegistry<v1::Workload>* const workloads_;
  absl::Mutex mu_;
  // Keys with a write in flight, with the newest report waiting behind it (if any).
  std::map<std::string, std::optional<v1::Workload>> in_flight_ ABSL_GUARDED_BY(mu_);
};

class AgentSession : public SessionHandle {
 public:
  using Sender = std::function<void(v1::ServerMessage)>;
  using Closer = std::function<void(const absl::Status&)>;

  // `send` queues a message on the stream; `close` ends it. Both must not block.
  AgentSession(const AgentSessionDeps* deps, Sender send, Closer close, std::string peer)
      : deps_(deps), send_(std::move(send)), close_(std::move(close)), peer_(std::move(peer)) {}
  ~AgentSession() override;

  // The session may only speak for `node` (from the agent's certificate): a Hello for
  // another node is refused (PERMISSION_DENIED). Call before the first message.
  void RestrictToNode(std::string node) { allowed_node_ = std::move(node); }

  void OnMessage(const v1::AgentMessage& message);
  // The stream ended (either side); the session unregisters.
  void OnStreamEnd();

  void SendDesired(int64_t generation, std::vector<v1::Workload> workloads) override;
  void Close(const absl::Status& status) override;

  const std::string& node() const { return node_; }

 private:
  void Fail(const std::string& message);
  void OnHello(const v1::AgentHello& hello);
  void OnGpus(const google::protobuf::RepeatedPtrField<v1::GpuInfo>& gpus);
  void OnWorkload(const v1::WorkloadReport& report);
  void UpsertNode(const v1::AgentHello& hello);

  const AgentSessionDeps* const deps_;
  std::string allowed_node_;  // Empty: any.
  const Sender send_;
  const Closer close_;
  const std::string peer_;
  // Set by the Hello; read only by the transport's thread afterwards.
  std::string node_;
  bool registered_ = false;
  absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

// The labels NVIDIA's GPU feature discovery puts on a node, from its GPUs
// (nvidia.com/gpu.product, .count, .memory in MiB, cuda.compute.major/minor).
std::map<std::string, std::string> GpuFeatureLabels(
    const google::protobuf::RepeatedPtrField<v1::GpuInfo>& gpus);

// Checks a Hello; an empty string when it is acceptable, else "hello.<field>: <why>".
std::string CheckHello(const v1::AgentHello& hello);

}  // namespace kaito::server
