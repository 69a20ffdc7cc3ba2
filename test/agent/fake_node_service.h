// A small NodeService for agent tests: accepts Connect streams on 127.0.0.1, records every
// message per node, answers each Hello with a Welcome, and lets the test push DesiredWorkloads.
// It can be shut down and started again on the same port; the record survives.
#pragma once

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kaito/v1/agent.grpc.pb.h"

namespace kaito::agent::testing {

class FakeNodeServer {
 public:
  struct Options {
    int64_t lease_ttl_ms = 40000;
    int64_t heartbeat_interval_ms = 10000;
    bool send_welcome = true;
  };

  explicit FakeNodeServer(Options options);
  FakeNodeServer() : FakeNodeServer(Options()) {}
  ~FakeNodeServer();

  // Listens on 127.0.0.1:`port` (0: any); the port stays the same for a restart.
  absl::Status Start(int port = 0);
  // Cancels every stream and stops listening.
  void Shutdown();
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // Every message received from `node`, over all its sessions, in order.
  std::vector<v1::AgentMessage> Messages(const std::string& node);
  std::vector<v1::AgentHello> Hellos(const std::string& node);
  std::vector<v1::Heartbeat> Heartbeats(const std::string& node);
  std::vector<v1::GpuReport> GpuReports(const std::string& node);
  std::vector<v1::WorkloadReport> WorkloadReports(const std::string& node);
  // Nodes that have sent a Hello.
  std::vector<std::string> Nodes();
  // Streams open now, in all, and for `node`.
  int open_streams();
  int open_streams(const std::string& node);

  // Writes `message` to the newest open stream of `node`; false when there is none.
  bool Send(const std::string& node, const v1::ServerMessage& message);

 private:
  class Stream;
  class Service;
  friend class Stream;

  void Record(Stream* stream, const std::string& node, const v1::AgentMessage& message);
  void Forget(Stream* stream);

  const Options options_;
  int port_ = 0;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  absl::Mutex mu_;
  std::map<std::string, std::vector<v1::AgentMessage>> messages_ ABSL_GUARDED_BY(mu_);
  // Open streams with the node they said Hello for (empty before the Hello).
  std::map<Stream*, std::string> streams_ ABSL_GUARDED_BY(mu_);
  // Per node, the newest stream.
  std::map<std::string, Stream*> newest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::agent::testing
