#include "agent/agent.h"

#include "absl/strings/match.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>

#include "absl/strings/str_cat.h"
#include "common/version.h"
#include "kaito/v1/agent.grpc.pb.h"

namespace kaito::agent {

std::shared_ptr<grpc::Channel> CreateAgentChannel(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments args;
  // Channels to the same address would otherwise share one connection (gRPC's global
  // subchannel pool), and HTTP/2 servers allow about 100 concurrent streams per connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // Detects a server that vanished without closing the connection. Five minutes is the
  // least that gRPC servers accept by default without a GOAWAY for too many pings.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 5 * 60 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 30 * 1000);
  return grpc::CreateCustomChannel(address, std::move(credentials), args);
}

// Counts the reactors that have not had OnDone, so that `Stop` can wait for them. Shared with
// the reactors, since the last OnDone may run after `Stop` returns... up to its last line.
struct Agent::SessionTracker {
  absl::Mutex mu;
  int live ABSL_GUARDED_BY(mu) = 0;

  void Add() {
    absl::MutexLock lock(&mu);
    ++live;
  }
  void Remove() {
    absl::MutexLock lock(&mu);
    --live;
  }
  void WaitIdle() {
    absl::MutexLock lock(&mu);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu) { return live == 0; };
    mu.Await(absl::Condition(&idle));
  }
};

// One NodeService.Connect stream. Owned by the agent (deleted on the strand after OnDone, or
// by `Stop` after waiting for OnDone). Its write queue has its own lock; everything it learns
// goes to the agent through the strand. Writes after the server stopped reading are dropped: a
// hold keeps the call open until reads end, so that `Send` never starts a write on a finished
// call.
class Agent::Session : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  Session(Agent* agent, uint64_t id, std::shared_ptr<grpc::Channel> channel)
      : agent_(agent),
        id_(id),
        strand_(agent->strand_),
        tracker_(agent->tracker_),
        metrics_(agent->options_.metrics),
        stub_(v1::NodeService::NewStub(channel)) {}

  uint64_t id() const { return id_; }

  void Start(v1::AgentMessage hello) {
    tracker_->Add();
    stub_->async()->Connect(&context_, this);
    Send(std::move(hello));
    StartRead(&read_);
    AddHold();
    StartCall();
  }

  // False when the stream no longer takes writes.
  bool Send(v1::AgentMessage message) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    const std::string key = CoalesceKey(message);
    if (!key.empty()) {
      for (v1::AgentMessage& queued : queue_) {
        if (CoalesceKey(queued) == key) {
          queued = std::move(message);
          return true;
        }
      }
    }
    queue_.push_back(std::move(message));
    WriteNextLocked();
    return true;
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        absl::MutexLock lock(&mu_);
        closed_ = true;
        queue_.clear();
      }
      RemoveHold();
      return;
    }
    v1::ServerMessage message = std::move(read_);
    read_.Clear();
    StartRead(&read_);
    strand_->Run([agent = agent_, id = id_, message = std::move(message)] {
      agent->OnServerMessage(id, message);
    });
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      closed_ = true;
      queue_.clear();
      return;
    }
    if (metrics_ != nullptr) {
      switch (current_.message_case()) {
        case v1::AgentMessage::kHello:
          metrics_->hello_sent().Increment();
          break;
        case v1::AgentMessage::kHeartbeat:
          metrics_->heartbeats_sent().Increment();
          break;
        case v1::AgentMessage::kGpus:
          metrics_->gpu_reports_sent().Increment();
          break;
        case v1::AgentMessage::kWorkload:
          metrics_->workload_reports_sent().Increment();
          break;
        case v1::AgentMessage::MESSAGE_NOT_SET:
          break;
      }
    }
    WriteNextLocked();
  }

  void OnDone(const grpc::Status& status) override {
    // Nothing of `this` is touched after the tracker lets `Stop` go on.
    std::shared_ptr<WorkSerializer> strand = strand_;
    std::shared_ptr<SessionTracker> tracker = tracker_;
    Agent* agent = agent_;
    const uint64_t id = id_;
    std::string error =
        status.ok() ? "the server ended the stream"
                    : absl::StrCat("stream ended: code ", static_cast<int>(status.error_code()),
                                   ": ", status.error_message());
    tracker->Remove();
    strand->Run([agent, id, error = std::move(error)] { agent->OnSessionDone(id, error); });
  }

 private:
  static std::string CoalesceKey(const v1::AgentMessage& message) {
    switch (message.message_case()) {
      case v1::AgentMessage::kHeartbeat:
        return "heartbeat";
      case v1::AgentMessage::kGpus:
        return "gpus";
      case v1::AgentMessage::kWorkload:
        return absl::StrCat("workload/", message.workload().namespace_(), "/",
                            message.workload().name(), "/", message.workload().uid());
      default:
        return "";
    }
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closed_ || writing_ || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  Agent* const agent_;
  const uint64_t id_;
  const std::shared_ptr<WorkSerializer> strand_;
  const std::shared_ptr<SessionTracker> tracker_;
  AgentMetrics* const metrics_;
  std::unique_ptr<v1::NodeService::Stub> stub_;
  grpc::ClientContext context_;
  v1::ServerMessage read_;
  absl::Mutex mu_;
  std::deque<v1::AgentMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::AgentMessage current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

namespace {

WorkloadSupervisorOptions SupervisorOptions(const AgentOptions& options) {
  WorkloadSupervisorOptions s = options.supervisor;
  s.node_name = options.node_name;
  s.node_address = options.address;
  return s;
}

}  // namespace

Agent::Agent(AgentOptions options, Clock* clock, GpuProbe* probe, ContainerRuntime* runtime)
    : options_(std::move(options)),
      clock_(clock),
      probe_(probe),
      runtime_(runtime),
      channel_(options_.channel ? options_.channel : CreateAgentChannel(options_.server_address)),
      tracker_(std::make_shared<SessionTracker>()),
      jitter_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
  supervisor_ = std::make_unique<WorkloadSupervisor>(
      SupervisorOptions(options_), clock_, runtime_, strand_,
      [this](const v1::WorkloadReport& report) { OnWorkloadChange(report); });
}

Agent::~Agent() { Stop(); }

Clock::TimerId Agent::Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  return clock_->RunAfter(
      delay, [strand = strand_, fn = std::move(fn)]() mutable { strand->Run(std::move(fn)); });
}

void Agent::CancelTimer(Clock::TimerId& id) {
  if (id != 0) clock_->Cancel(id);
  id = 0;
}

void Agent::Start() {
  strand_->Run([this] {
    Recover();
    if (options_.gpu_probe_interval > absl::ZeroDuration()) {
      probe_timer_ = Arm(options_.gpu_probe_interval, [this] {
        probe_timer_ = 0;
        ProbeTick();
      });
    }
  });
}

void Agent::Stop() {
  {
    absl::MutexLock lock(&stop_mu_);
    if (stop_called_) return;
    stop_called_ = true;
  }
  // From here on no closure runs on the strand: this thread owns the strand state.
  strand_->Close();
  for (Clock::TimerId* id :
       {&recover_timer_, &reconnect_timer_, &welcome_timer_, &heartbeat_timer_, &probe_timer_}) {
    CancelTimer(*id);
  }
  supervisor_->Shutdown();
  if (stream_) stream_->Cancel();
  tracker_->WaitIdle();
  stream_.reset();
  if (welcomed_ && options_.metrics != nullptr) options_.metrics->sessions_welcomed().Decrement();
  welcomed_ = false;
  absl::MutexLock lock(&state_mu_);
  state_.connected = false;
  state_.welcomed = false;
}

void Agent::Recover() {
  recover_timer_ = 0;
  supervisor_->Recover([this](absl::Status status) {
    if (status.ok()) {
      recovered_ = true;
      PublishState();
      Connect();
      return;
    }
    const absl::Duration delay = NextBackoff();
    spdlog::warn("node {}: cannot list the runtime's containers ({}); retrying in {}",
                 options_.node_name, status.ToString(), absl::FormatDuration(delay));
    recover_timer_ = Arm(delay, [this] { Recover(); });
  });
}

std::vector<v1::GpuInfo> Agent::ProbeGpus() {
  auto gpus = probe_->Probe();
  if (!gpus.ok()) {
    const std::string error = gpus.status().ToString();
    if (error != last_probe_error_) {
      spdlog::warn("node {}: GPU probe failed, reporting no GPUs: {}", options_.node_name, error);
    }
    last_probe_error_ = error;
    absl::MutexLock lock(&state_mu_);
    probed_gpus_.clear();
    return {};
  }
  last_probe_error_.clear();
  absl::MutexLock lock(&state_mu_);
  probed_gpus_ = *gpus;
  return std::move(*gpus);
}

void Agent::Connect() {
  reconnect_timer_ = 0;
  if (stream_) return;
  std::vector<v1::GpuInfo> gpus = ProbeGpus();
  v1::GpuReport report;
  for (const auto& gpu : gpus) *report.add_gpus() = gpu;
  last_gpus_ = report.SerializeAsString();

  v1::AgentMessage message;
  v1::AgentHello* hello = message.mutable_hello();
  hello->set_node_name(options_.node_name);
  for (const auto& [k, v] : options_.labels) (*hello->mutable_labels())[k] = v;
  hello->set_instance_type(options_.instance_type);
  *hello->mutable_gpus() = report.gpus();
  hello->set_agent_version(Version());
  for (v1::WorkloadReport& r : supervisor_->Reports()) *hello->add_running() = std::move(r);
  hello->set_address(options_.address);
  hello->set_provider_id(options_.provider_id);
  for (const v1::Taint& t : options_.taints) *hello->add_taints() = t;

  // Generations are per session: a new one may come from a server that counts from 1 again.
  supervisor_->ResetGeneration();
  welcomed_ = false;
  dialled_at_ = clock_->Monotonic();
  const uint64_t id = ++sessions_;
  stream_ = std::make_unique<Session>(this, id, channel_);
  stream_->Start(std::move(message));
  if (options_.metrics != nullptr) options_.metrics->sessions_started().Increment();
  if (options_.welcome_timeout > absl::ZeroDuration()) {
    welcome_timer_ = Arm(options_.welcome_timeout, [this, id] {
      welcome_timer_ = 0;
      if (stream_ && stream_->id() == id && !welcomed_) {
        spdlog::warn("node {}: no Welcome from {} within {}; dialling again", options_.node_name,
                     options_.server_address, absl::FormatDuration(options_.welcome_timeout));
        stream_->Cancel();
      }
    });
  }
  PublishState();
}

void Agent::OnServerMessage(uint64_t session, const v1::ServerMessage& message) {
  if (!stream_ || stream_->id() != session) return;
  switch (message.message_case()) {
    case v1::ServerMessage::kWelcome: {
      const bool first = !welcomed_;
      welcome_ = message.welcome();
      welcomed_ = true;
      attempt_ = 0;
      CancelTimer(welcome_timer_);
      CancelTimer(heartbeat_timer_);
      const absl::Duration interval = welcome_.heartbeat_interval_ms() > 0
                                          ? absl::Milliseconds(welcome_.heartbeat_interval_ms())
                                          : options_.default_heartbeat_interval;
      heartbeat_timer_ = Arm(interval, [this] {
        heartbeat_timer_ = 0;
        SendHeartbeat();
      });
      if (first) {
        if (options_.metrics != nullptr) {
          options_.metrics->sessions_welcomed().Increment();
          options_.metrics->welcome_latency().Observe(
              absl::ToDoubleSeconds(clock_->Monotonic() - dialled_at_));
        }
        spdlog::debug("node {}: welcomed (lease {} ms, heartbeat every {})", options_.node_name,
                      welcome_.lease_ttl_ms(), absl::FormatDuration(interval));
      }
      break;
    }
    case v1::ServerMessage::kDesired: {
      const v1::DesiredWorkloads& desired = message.desired();
      std::vector<v1::Workload> workloads(desired.workloads().begin(), desired.workloads().end());
      const bool applied = supervisor_->Apply(desired.generation(), workloads);
      if (options_.metrics != nullptr) {
        (applied ? options_.metrics->desired_applied() : options_.metrics->desired_ignored())
            .Increment();
      }
      if (!applied) {
        spdlog::debug("node {}: ignoring desired set generation {} (applied {})",
                      options_.node_name, desired.generation(),
                      supervisor_->applied_generation().value_or(-1));
      }
      break;
    }
    case v1::ServerMessage::MESSAGE_NOT_SET:
      break;
  }
  PublishState();
}

void Agent::OnSessionDone(uint64_t session, const std::string& error) {
  if (!stream_ || stream_->id() != session) return;
  stream_.reset();
  CancelTimer(welcome_timer_);
  CancelTimer(heartbeat_timer_);
  if (options_.metrics != nullptr) {
    options_.metrics->sessions_ended().Increment();
    if (welcomed_) options_.metrics->sessions_welcomed().Decrement();
  }
  const absl::Duration delay = NextBackoff();
  if (welcomed_) {
    spdlog::info("node {}: session with {} lost ({}); reconnecting in {}", options_.node_name,
                 options_.server_address, error, absl::FormatDuration(delay));
  } else if (absl::StrContains(error, absl::StrCat("code ", grpc::PERMISSION_DENIED, ":")) ||
             absl::StrContains(error, absl::StrCat("code ", grpc::UNAUTHENTICATED, ":"))) {
    // Not a network blip: the server says this agent's identity may not do this.
    spdlog::warn("node {}: refused by {} ({}); retrying in {}", options_.node_name,
                 options_.server_address, error, absl::FormatDuration(delay));
  } else {
    spdlog::debug("node {}: cannot connect to {} ({}); retrying in {}", options_.node_name,
                  options_.server_address, error, absl::FormatDuration(delay));
  }
  welcomed_ = false;
  last_error_ = error;
  reconnect_timer_ = Arm(delay, [this] { Connect(); });
  PublishState();
}

void Agent::SendHeartbeat() {
  if (!stream_ || !welcomed_) return;
  v1::AgentMessage message;
  message.mutable_heartbeat()->set_sequence(++heartbeat_sequence_);
  if (stream_->Send(std::move(message))) ++heartbeats_sent_;
  const absl::Duration interval = welcome_.heartbeat_interval_ms() > 0
                                      ? absl::Milliseconds(welcome_.heartbeat_interval_ms())
                                      : options_.default_heartbeat_interval;
  heartbeat_timer_ = Arm(interval, [this] {
    heartbeat_timer_ = 0;
    SendHeartbeat();
  });
  PublishState();
}

void Agent::ProbeTick() {
  if (stream_) {
    std::vector<v1::GpuInfo> gpus = ProbeGpus();
    v1::AgentMessage message;
    for (const auto& gpu : gpus) *message.mutable_gpus()->add_gpus() = gpu;
    std::string serialized = message.gpus().SerializeAsString();
    if (serialized != last_gpus_ && stream_->Send(std::move(message))) {
      last_gpus_ = std::move(serialized);
    }
  }
  probe_timer_ = Arm(options_.gpu_probe_interval, [this] {
    probe_timer_ = 0;
    ProbeTick();
  });
}

void Agent::OnWorkloadChange(const v1::WorkloadReport& report) {
  if (options_.metrics != nullptr) {
    options_.metrics->workload_phase(report.status().phase()).Increment();
    // Restarts made here: the increase of a count this process has seen before (an adopted
    // workload's first count is the server's history, not this process's work).
    const std::string key = report.uid();
    const int restarts = report.status().restarts();
    auto [it, fresh] = last_restarts_.emplace(key, restarts);
    if (!fresh && restarts > it->second) {
      options_.metrics->container_restarts().Increment(restarts - it->second);
    }
    it->second = restarts;
    if (report.status().phase() == "Succeeded" || report.status().phase() == "Failed") {
      last_restarts_.erase(key);
    }
  }
  if (stream_) {
    v1::AgentMessage message;
    *message.mutable_workload() = report;
    stream_->Send(std::move(message));
  }
  absl::MutexLock lock(&state_mu_);
  reports_ = supervisor_->Reports();
}

absl::Duration Agent::NextBackoff() {
  absl::Duration ceiling = options_.reconnect_backoff_base;
  for (int i = 0; i < attempt_ && ceiling < options_.reconnect_backoff_cap; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, options_.reconnect_backoff_cap);
  attempt_ = std::min(attempt_ + 1, 62);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return ceiling * unit(jitter_);
}

void Agent::PublishState() {
  AgentState s;
  s.recovered = recovered_;
  s.connected = stream_ != nullptr;
  s.welcomed = welcomed_;
  s.sessions = static_cast<int64_t>(sessions_);
  s.heartbeats_sent = heartbeats_sent_;
  s.heartbeat_sequence = heartbeat_sequence_;
  s.lease_ttl_ms = welcome_.lease_ttl_ms();
  s.heartbeat_interval_ms = welcome_.heartbeat_interval_ms();
  s.node_uid = welcome_.node_uid();
  s.desired_generation = supervisor_->applied_generation().value_or(-1);
  s.last_error = last_error_;
  std::vector<v1::WorkloadReport> reports = supervisor_->Reports();
  absl::MutexLock lock(&state_mu_);
  state_ = std::move(s);
  reports_ = std::move(reports);
}

AgentState Agent::state() {
  absl::MutexLock lock(&state_mu_);
  return state_;
}

std::vector<v1::WorkloadReport> Agent::workloads() {
  absl::MutexLock lock(&state_mu_);
  return reports_;
}

std::vector<v1::GpuInfo> Agent::gpus() {
  absl::MutexLock lock(&state_mu_);
  return probed_gpus_;
}

}  // namespace kaito::agent
