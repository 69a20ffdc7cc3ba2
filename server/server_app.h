// The composition root of kaito-server: opens the store, starts the caches, builds the
// registries and services, and serves gRPC and /metrics. `main()` and the in-process
// tests and benchmarks construct it the same way.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/metrics_server.h"
#include "server/api/config_service.h"
#include "server/api/preset_service.h"
#include "server/api/rpc_metrics.h"
#include "server/api/system_service.h"
#include "server/api/workspace_service.h"
#include "server/registry/kinds/configmap_policy.h"
#include "server/registry/kinds/secret_policy.h"
#include "server/registry/kinds/workspace_policy.h"
#include "server/registry/object_cache.h"
#include "server/store/store.h"
#include "presets/catalog.h"
#include "presets/workspace_validator.h"

namespace kaito::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  // Empty: no metrics listener (tests).
  std::string metrics_listen = "127.0.0.1:8080";
  std::string data_dir = ".kaito";
  // "sqlite" (default, under data_dir), "memory" (nothing survives a restart),
  // "etcd://h1:p1,h2:p2".
  std::string store = "sqlite";
  bool dev = false;
  // Empty: bring-your-own nodes (unless dev mode, which simulates a provisioner).
  std::string provisioner;
  // Where models.yaml and skus.yaml are; empty uses the catalog built into the binary.
  std::string catalog_dir;
  // Kaito's CLOUD_PROVIDER: which SKU table applies (azure | aws | arc).
  std::string cloud = "azure";
  // Kaito feature gates: vLLM (default runtime), enableMIG, enableAccelerator.
  bool gate_vllm = true;
  bool gate_mig = false;
  bool gate_accelerator = false;
  // Events each cache keeps for watch resumption.
  size_t watch_history = 10000;
  // Events a watch stream may queue for a slow client before it is cut off (ABORTED).
  size_t watch_backlog = kMaxWatchBacklog;
  // Revisions of history the store keeps.
  int64_t store_history = 100000;
  int max_message_bytes = 4 << 20;
  // Time for every component; null makes the app own a RealClock (tests pass a FakeClock).
  Clock* clock = nullptr;
};

// Parses Kaito's --feature-gates syntax ("k=v,k=v") into `options`; unknown gates and
// values other than true/false are errors.
absl::Status ParseFeatureGates(const std::string& gates, ServerOptions& options);

class ServerApp {
 public:
  static absl::StatusOr<std::unique_ptr<ServerApp>> Start(const ServerOptions& options);
  ~ServerApp();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // Blocks until Shutdown.
  void Wait();
  // Stops accepting RPCs, ends open streams, then closes the store.
  void Shutdown();

  store::Store* store() { return store_.get(); }
  ObjectRegistry<v1::Workspace>* workspaces() { return workspaces_.get(); }
  const presets::Catalog& catalog() const { return *catalog_; }

 private:
  ServerApp() = default;

  std::unique_ptr<RealClock> owned_clock_;
  Clock* clock_ = nullptr;
  std::shared_ptr<prometheus::Registry> prometheus_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<presets::Catalog> catalog_;
  std::unique_ptr<ObjectCache> workspace_cache_, configmap_cache_, secret_cache_, node_cache_;
  std::unique_ptr<presets::ValidationContext> validation_context_;
  std::unique_ptr<presets::WorkspaceValidator> validator_;
  std::unique_ptr<ObjectRegistry<v1::Workspace>> workspaces_;
  std::unique_ptr<ObjectRegistry<v1::ConfigMap>> configmaps_;
  std::unique_ptr<ObjectRegistry<v1::Secret>> secrets_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<WorkspaceGrpcService> workspace_service_;
  std::unique_ptr<ConfigGrpcService> config_service_;
  std::unique_ptr<SecretGrpcService> secret_service_;
  std::unique_ptr<SystemGrpcService> system_service_;
  std::unique_ptr<PresetGrpcService> preset_service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_;
  int grpc_port_ = 0;
  bool shut_down_ = false;
};

}  // namespace kaito::server
