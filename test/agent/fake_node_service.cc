#include "fake_node_service.h"

#include <chrono>
#include <deque>
#include <optional>

namespace kaito::agent::testing {

// One agent stream. Deletes itself in OnDone; Finish is called once, never with a write in
// flight.
class FakeNodeServer::Stream : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  explicit Stream(FakeNodeServer* server) : server_(server) {
    {
      absl::MutexLock lock(&server_->mu_);
      server_->streams_[this] = "";
    }
    StartRead(&in_);
  }

  void Write(const v1::ServerMessage& message) {
    absl::MutexLock lock(&mu_);
    if (finish_) return;
    queue_.push_back(message);
    WriteNextLocked();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      absl::MutexLock lock(&mu_);
      RequestFinishLocked(grpc::Status::OK);
      return;
    }
    if (in_.has_hello()) node_ = in_.hello().node_name();
    const bool hello = in_.has_hello();
    server_->Record(this, node_, in_);
    if (hello && server_->options_.send_welcome) {
      v1::ServerMessage welcome;
      welcome.mutable_welcome()->set_lease_ttl_ms(server_->options_.lease_ttl_ms);
      welcome.mutable_welcome()->set_heartbeat_interval_ms(server_->options_.heartbeat_interval_ms);
      welcome.mutable_welcome()->set_node_uid("uid-" + node_);
      Write(welcome);
    }
    in_.Clear();
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) RequestFinishLocked(grpc::Status::CANCELLED);
    if (finish_ && !finished_) {
      finished_ = true;
      Finish(*finish_);
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    server_->Forget(this);
    delete this;
  }

 private:
  void RequestFinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_) return;
    finish_ = status;
    queue_.clear();
    if (!writing_) {
      finished_ = true;
      Finish(status);
    }
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_ || writing_ || queue_.empty()) return;
    out_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&out_);
  }

  FakeNodeServer* const server_;
  v1::AgentMessage in_;
  std::string node_;
  absl::Mutex mu_;
  std::deque<v1::ServerMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::ServerMessage out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

class FakeNodeServer::Service : public v1::NodeService::CallbackService {
 public:
  explicit Service(FakeNodeServer* server) : server_(server) {}
  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext*) override {
    return new Stream(server_);
  }

 private:
  FakeNodeServer* const server_;
};

FakeNodeServer::FakeNodeServer(Options options) : options_(options) {}

FakeNodeServer::~FakeNodeServer() { Shutdown(); }

absl::Status FakeNodeServer::Start(int port) {
  service_ = std::make_unique<Service>(this);
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(),
                           &selected);
  builder.RegisterService(service_.get());
  server_ = builder.BuildAndStart();
  if (!server_ || selected == 0) {
    return absl::UnavailableError("cannot listen on 127.0.0.1:" + std::to_string(port));
  }
  port_ = selected;
  return absl::OkStatus();
}

void FakeNodeServer::Shutdown() {
  if (!server_) return;
  server_->Shutdown(std::chrono::system_clock::now());
  server_->Wait();
  server_.reset();
  service_.reset();
}

void FakeNodeServer::Record(Stream* stream, const std::string& node,
                            const v1::AgentMessage& message) {
  absl::MutexLock lock(&mu_);
  messages_[node].push_back(message);
  if (message.has_hello()) {
    streams_[stream] = node;
    newest_[node] = stream;
  }
}

void FakeNodeServer::Forget(Stream* stream) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(stream);
  if (it == streams_.end()) return;
  auto newest = newest_.find(it->second);
  if (newest != newest_.end() && newest->second == stream) newest_.erase(newest);
  streams_.erase(it);
}

std::vector<v1::AgentMessage> FakeNodeServer::Messages(const std::string& node) {
  absl::MutexLock lock(&mu_);
  auto it = messages_.find(node);
  return it == messages_.end() ? std::vector<v1::AgentMessage>{} : it->second;
}

std::vector<v1::AgentHello> FakeNodeServer::Hellos(const std::string& node) {
  std::vector<v1::AgentHello> out;
  for (const auto& m : Messages(node)) {
    if (m.has_hello()) out.push_back(m.hello());
  }
  return out;
}

std::vector<v1::Heartbeat> FakeNodeServer::Heartbeats(const std::string& node) {
  std::vector<v1::Heartbeat> out;
  for (const auto& m : Messages(node)) {
    if (m.has_heartbeat()) out.push_back(m.heartbeat());
  }
  return out;
}

std::vector<v1::GpuReport> FakeNodeServer::GpuReports(const std::string& node) {
  std::vector<v1::GpuReport> out;
  for (const auto& m : Messages(node)) {
    if (m.has_gpus()) out.push_back(m.gpus());
  }
  return out;
}

std::vector<v1::WorkloadReport> FakeNodeServer::WorkloadReports(const std::string& node) {
  std::vector<v1::WorkloadReport> out;
  for (const auto& m : Messages(node)) {
    if (m.has_workload()) out.push_back(m.workload());
  }
  return out;
}

std::vector<std::string> FakeNodeServer::Nodes() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [node, messages] : messages_) {
    for (const auto& m : messages) {
      if (m.has_hello()) {
        out.push_back(node);
        break;
      }
    }
  }
  return out;
}

int FakeNodeServer::open_streams() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

int FakeNodeServer::open_streams(const std::string& node) {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [stream, name] : streams_) n += name == node ? 1 : 0;
  return n;
}

bool FakeNodeServer::Send(const std::string& node, const v1::ServerMessage& message) {
  absl::MutexLock lock(&mu_);
  auto it = newest_.find(node);
  if (it == newest_.end()) return false;
  it->second->Write(message);
  return true;
}

}  // namespace kaito::agent::testing
