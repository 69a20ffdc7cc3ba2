#include "server/agents/agent_session.h"

#include <google/protobuf/util/message_differencer.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/field_errors.h"
#include "common/k8s_names.h"
#include "common/logging.h"
#include "server/controllers/conditions.h"

namespace kaito::server {
namespace {

using google::protobuf::util::MessageDifferencer;

constexpr int kMaxGpus = 64;
constexpr size_t kMaxString = 256;
constexpr int kMaxLabels = 128;
constexpr int kMaxRunning = 1024;

std::string CheckGpus(const google::protobuf::RepeatedPtrField<v1::GpuInfo>& gpus,
                      const std::string& path) {
  if (gpus.size() > kMaxGpus) return path + ": more than 64 GPUs";
  for (int i = 0; i < gpus.size(); ++i) {
    const v1::GpuInfo& g = gpus[i];
    const std::string p = absl::StrCat(path, "[", i, "]");
    if (g.model().empty() || g.model().size() > kMaxString) return p + ".model: empty or too long";
    if (g.uuid().size() > kMaxString) return p + ".uuid: too long";
    if (g.memory_bytes() <= 0 || g.memory_bytes() > (int64_t{1} << 44)) {
      return p + ".memoryBytes: must be positive and at most 16 TiB";
    }
    if (g.memory_used_bytes() < 0) return p + ".memoryUsedBytes: must not be negative";
    if (g.compute_capability().size() > 16) return p + ".computeCapability: too long";
    if (g.health_reason().size() > 1024) return p + ".healthReason: too long";
  }
  return "";
}

std::string CheckReport(const v1::WorkloadReport& r, const std::string& path) {
  if (r.name().empty() || r.name().size() > 253) return path + ".name: empty or too long";
  if (r.namespace_().empty() || r.namespace_().size() > 63) {
    return path + ".namespace: empty or too long";
  }
  if (r.status().phase().size() > 32) return path + ".status.phase: too long";
  if (r.status().message().size() > 4096) return path + ".status.message: too long";
  if (r.status().reason().size() > kMaxString) return path + ".status.reason: too long";
  if (r.status().endpoint().size() > kMaxString) return path + ".status.endpoint: too long";
  if (r.status().data_bytes() < 0 || r.status().data_total_bytes() < 0) {
    return path + ".status.dataBytes: must not be negative";
  }
  static const std::set<std::string> kPhases = {
      "", "Pending", "Pulling", "Starting", "Running", "Ready", "Succeeded", "Failed", "Stopped"};
  if (!kPhases.contains(r.status().phase())) {
    return path + ".status.phase: unknown phase \"" + r.status().phase() + "\"";
  }
  return "";
}

// Records the node's GPUs and the Ready condition they decide: Ready while the agent is
// connected and every GPU is healthy.
void SetGpus(const google::protobuf::RepeatedPtrField<v1::GpuInfo>& gpus, absl::Time now,
             v1::NodeStatus* status) {
  status->clear_gpus();
  std::string unhealthy;
  for (const auto& g : gpus) {
    *status->add_gpus() = g;
    if (!g.healthy()) unhealthy = g.uuid() + ": " + g.health_reason();
  }
  const bool healthy = unhealthy.empty();
  SetCondition(status->mutable_conditions(), "Ready", healthy,
               healthy ? "AgentReady" : "GpuUnhealthy",
               healthy ? "the node's agent is connected and its GPUs are healthy"
                       : "unhealthy GPU " + unhealthy,
               0, now);
}

}  // namespace

std::string CheckHello(const v1::AgentHello& hello) {
  if (std::string e = CheckDnsSubdomain(hello.node_name()); !e.empty()) {
    return "hello.nodeName: " + e;
  }
  if (hello.labels_size() > kMaxLabels) return "hello.labels: more than 128 labels";
  for (const auto& [k, v] : hello.labels()) {
    if (std::string e = CheckQualifiedName(k); !e.empty()) return "hello.labels: " + e;
    if (std::string e = CheckLabelValue(v); !e.empty()) return "hello.labels[" + k + "]: " + e;
  }
  for (const std::string* s :
       {&hello.instance_type(), &hello.agent_version(), &hello.address(), &hello.provider_id()}) {
    if (s->size() > 1024) return "hello: a field is longer than 1024 characters";
  }
  if (std::string e = CheckGpus(hello.gpus(), "hello.gpus"); !e.empty()) return e;
  if (hello.running_size() > kMaxRunning) return "hello.running: more than 1024 workloads";
  for (int i = 0; i < hello.running_size(); ++i) {
    if (std::string e = CheckReport(hello.running(i), absl::StrCat("hello.running[", i, "]"));
        !e.empty()) {
      return e;
    }
  }
  if (hello.taints_size() > 64) return "hello.taints: more than 64 taints";
  return "";
}

std::map<std::string, std::string> GpuFeatureLabels(
    const google::protobuf::RepeatedPtrField<v1::GpuInfo>& gpus) {
  std::map<std::string, std::string> labels;
  if (gpus.empty()) return labels;
  const v1::GpuInfo& first = gpus[0];
  std::string product = first.model();
  for (char& c : product) {
    if (c == ' ') c = '-';
  }
  if (CheckLabelValue(product).empty()) labels["nvidia.com/gpu.product"] = product;
  labels["nvidia.com/gpu.count"] = std::to_string(gpus.size());
  labels["nvidia.com/gpu.memory"] = std::to_string(first.memory_bytes() / (1024 * 1024));
  const std::string& cc = first.compute_capability();
  if (size_t dot = cc.find('.'); dot != std::string::npos) {
    int major = 0, minor = 0;
    if (absl::SimpleAtoi(cc.substr(0, dot), &major) &&
        absl::SimpleAtoi(cc.substr(dot + 1), &minor)) {
      labels["nvidia.com/cuda.compute.major"] = std::to_string(major);
      labels["nvidia.com/cuda.compute.minor"] = std::to_string(minor);
    }
  }
  labels["accelerator"] = "nvidia";
  return labels;
}

AgentSession::~AgentSession() { OnStreamEnd(); }

void AgentSession::Fail(const std::string& message) {
  if (deps_->stats) deps_->stats->protocol_errors++;
  spdlog::warn("agent session {} ({}): {}", node_.empty() ? "?" : node_, peer_, message);
  Close(absl::InvalidArgumentError(message));
}

void AgentSession::Close(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
  }
  close_(status);
}

void AgentSession::OnStreamEnd() {
  if (registered_) {
    deps_->sessions->Unregister(node_, this);
    registered_ = false;
  }
}

void AgentSession::SendDesired(int64_t generation, std::vector<v1::Workload> workloads) {
  v1::ServerMessage message;
  message.mutable_desired()->set_generation(generation);
  for (auto& w : workloads) *message.mutable_desired()->add_workloads() = std::move(w);
  send_(std::move(message));
}

void AgentSession::OnMessage(const v1::AgentMessage& message) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
  }
  if (message.has_hello()) {
    if (!node_.empty()) return Fail("a second Hello on one session");
    return OnHello(message.hello());
  }
  if (node_.empty()) return Fail("the first message of a session must be a Hello");
  switch (message.message_case()) {
    case v1::AgentMessage::kHeartbeat:
      if (deps_->stats) deps_->stats->heartbeats++;
      deps_->leases->Renew(node_);
      return;
    case v1::AgentMessage::kGpus:
      if (std::string e = CheckGpus(message.gpus().gpus(), "gpus.gpus"); !e.empty()) {
        return Fail(e);
      }
      deps_->leases->Renew(node_);
      return OnGpus(message.gpus().gpus());
    case v1::AgentMessage::kWorkload:
      if (std::string e = CheckReport(message.workload(), "workload"); !e.empty()) {
        return Fail(e);
      }
      deps_->leases->Renew(node_);
      return OnWorkload(message.workload());
    default:
      return Fail("an empty message");
  }
}

void AgentSession::OnHello(const v1::AgentHello& hello) {
  if (std::string e = CheckHello(hello); !e.empty()) return Fail(e);
  if (!allowed_node_.empty() && hello.node_name() != allowed_node_) {
    if (deps_->stats) deps_->stats->protocol_errors++;
    spdlog::warn("agent session ({}): node {} may not speak for node {}", peer_, allowed_node_,
                 Abbreviate(hello.node_name()));
    return Close(absl::PermissionDeniedError("nodes \"" + Abbreviate(hello.node_name()) +
                                             "\" is forbidden: User \"system:node:" +
                                             allowed_node_ + "\" may act only for its own node"));
  }
  node_ = hello.node_name();
  if (deps_->stats) deps_->stats->hellos++;
  spdlog::info("agent session: node {} connected from {} ({} GPUs, {} workloads running)", node_,
               peer_, hello.gpus_size(), hello.running_size());
  deps_->leases->Renew(node_);
  UpsertNode(hello);
  v1::ServerMessage welcome;
  welcome.mutable_welcome()->set_lease_ttl_ms(absl::ToInt64Milliseconds(deps_->options.lease_ttl));
  welcome.mutable_welcome()->set_heartbeat_interval_ms(
      absl::ToInt64Milliseconds(deps_->options.heartbeat_interval));
  send_(std::move(welcome));
  for (const auto& report : hello.running()) OnWorkload(report);
  // A workload being deleted that the agent no longer runs has stopped, even if its
  // Stopped report was lost with the previous stream: release it.
  std::set<std::string> running;
  for (const auto& r : hello.running()) running.insert(r.namespace_() + "/" + r.name());
  for (const auto& w : deps_->objects.workloads->ListShared("", [&](const v1::Workload& w) {
         return w.spec().node_name() == node_ && w.metadata().has_deletion_timestamp() &&
                HasFinalizer(w.metadata(), kWorkloadFinalizer) &&
                !running.contains(w.metadata().namespace_() + "/" + w.metadata().name());
       })) {
    v1::Workload update = *w;
    RemoveFinalizer(update.mutable_metadata(), kWorkloadFinalizer);
    update.mutable_metadata()->clear_resource_version();
    deps_->objects.workloads->Update(std::move(update), false, [](auto) {});
  }
  registered_ = true;
  deps_->sessions->Register(node_, this);
}

void AgentSession::UpsertNode(const v1::AgentHello& hello) {
  const ControlPlaneObjects& o = deps_->objects;
  const absl::Time now = deps_->clock->Now();
  v1::Node node;
  auto stored = o.nodes->GetShared("", hello.node_name());
  if (stored) node = *stored;
  node.mutable_metadata()->set_name(hello.node_name());
  node.mutable_metadata()->clear_resource_version();
  auto* labels = node.mutable_metadata()->mutable_labels();
  for (const auto& [k, v] : hello.labels()) (*labels)[k] = v;
  for (const auto& [k, v] : GpuFeatureLabels(hello.gpus())) (*labels)[k] = v;
  if (!hello.instance_type().empty()) (*labels)[kLabelInstanceType] = hello.instance_type();
  (*node.mutable_metadata()->mutable_annotations())[kAnnotationAgentManaged] = "true";
  v1::NodeSpec* spec = node.mutable_spec();
  spec->set_instance_type(hello.instance_type());
  spec->set_provider_id(hello.provider_id());
  spec->clear_taints();
  for (const auto& t : hello.taints()) *spec->add_taints() = t;
  auto claim = hello.labels().find(kLabelNodeClaim);
  spec->set_node_claim(claim != hello.labels().end() ? claim->second : "");

  v1::NodeStatus status = node.status();
  SetGpus(hello.gpus(), now, &status);
  (*status.mutable_capacity())["nvidia.com/gpu"] = std::to_string(hello.gpus_size());
  status.set_agent_version(hello.agent_version());
  status.set_address(hello.address());
  const std::string name = hello.node_name();
  auto write_status = [o, name, status](auto) {
    v1::Node update;
    update.mutable_metadata()->set_name(name);
    *update.mutable_status() = status;
    o.nodes->UpdateStatus(std::move(update), [name](auto r) {
      if (!r.ok()) spdlog::warn("node {}: status: {}", name, r.status().ToString());
    });
  };
  if (!stored) {
    *node.mutable_status() = status;
    o.nodes->Create(node, false, [o, node, write_status](auto r) mutable {
      // A node that appeared meanwhile (another session, an operator) is updated instead.
      if (!r.ok() && absl::IsAlreadyExists(r.status())) {
        o.nodes->Update(node, false, std::move(write_status));
        return;
      }
      if (!r.ok()) spdlog::warn("node {}: {}", node.metadata().name(), r.status().ToString());
    });
    return;
  }
  o.nodes->Update(node, false, std::move(write_status));
}

void AgentSession::OnGpus(const google::protobuf::RepeatedPtrField<v1::GpuInfo>& gpus) {
  const ControlPlaneObjects& o = deps_->objects;
  auto stored = o.nodes->GetShared("", node_);
  if (!stored) return;
  v1::Node update = *stored;
  update.mutable_metadata()->clear_resource_version();
  SetGpus(gpus, deps_->clock->Now(), update.mutable_status());
  o.nodes->UpdateStatus(std::move(update), [node = node_](auto r) {
    if (!r.ok()) spdlog::warn("node {}: GPU status: {}", node, r.status().ToString());
  });
}

void AgentSession::OnWorkload(const v1::WorkloadReport& report) {
  const ControlPlaneObjects& o = deps_->objects;
  auto stored = o.workloads->GetShared(report.namespace_(), report.name());
  if (!stored || stored->spec().node_name() != node_) {
    if (deps_->stats) deps_->stats->rejected_reports++;
    spdlog::warn("agent session {}: rejected a report for workload {}/{}: not placed on this node",
                 node_, report.namespace_(), report.name());
    return;
  }
  if (!report.uid().empty() && report.uid() != stored->metadata().uid()) {
    // An older incarnation of the same name: the agent will stop it.
    if (deps_->stats) deps_->stats->rejected_reports++;
    return;
  }
  if (deps_->stats) deps_->stats->reports++;
  if (report.status().phase() == "Stopped") {
    if (!stored->metadata().has_deletion_timestamp() ||
        !HasFinalizer(stored->metadata(), kWorkloadFinalizer)) {
      return;
    }
    v1::Workload update = *stored;
    RemoveFinalizer(update.mutable_metadata(), kWorkloadFinalizer);
    update.mutable_metadata()->clear_resource_version();
    o.workloads->Update(std::move(update), false, [](auto) {});
    return;
  }
  v1::WorkloadStatus status = report.status();
  // Restarts only grow within one incarnation. An agent that restarted and adopted the container
  // reports what it counted since (0) until the desired set hands it the server's count back.
  status.set_restarts(std::max(status.restarts(), stored->status().restarts()));
  if (MessageDifferencer::Equals(status, stored->status())) return;
  v1::Workload update = *stored;
  *update.mutable_status() = std::move(status);
  deps_->status_writer->Write(std::move(update));
}

void WorkloadStatusWriter::Write(v1::Workload update) {
  const std::string key = update.metadata().namespace_() + "/" + update.metadata().name();
  {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = in_flight_.try_emplace(key);
    if (!inserted) {
      it->second = std::move(update);  // Written when the one in flight completes.
      return;
    }
  }
  Start(key, std::move(update));
}

void WorkloadStatusWriter::Start(const std::string& key, v1::Workload update) {
  // Unconditional: the agent's report is the newest truth about the workload's status.
  update.mutable_metadata()->clear_resource_version();
  LogSubject about =
      SubjectFromLabels(update.metadata().labels(), "workload/" + update.metadata().name());
  workloads_->UpdateStatus(
      std::move(update), [self = shared_from_this(), key, about = std::move(about)](auto r) {
        if (!r.ok() && !absl::IsNotFound(r.status())) {
          LogAbout(spdlog::level::warn, about, "status: {}", r.status().ToString());
        }
        self->Done(key);
      });
}

void WorkloadStatusWriter::Done(const std::string& key) {
  std::optional<v1::Workload> next;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(key);
    if (it == in_flight_.end()) return;
    if (!it->second) {
      in_flight_.erase(it);
      return;
    }
    next = std::move(it->second);
    it->second.reset();
  }
  Start(key, std::move(*next));
}

}  // namespace kaito::server
