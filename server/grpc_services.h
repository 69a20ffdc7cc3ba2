// The gRPC adapters: thin callback-API (reactor) services over the registries. Handlers
// never block: reads answer from the cache, writes finish from the store's completion.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <memory>

#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/system.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "kaito/v1/presets.grpc.pb.h"
#include "kinds.h"
#include "catalog.h"

namespace kaito {

// Counts and times every RPC by method and code. The per-method series are resolved
// once, so recording an RPC takes no lock and no label hashing.
class RpcMetrics {
 public:
  class Method {
   public:
    void Record(const grpc::Status& status, double seconds);

   private:
    friend class RpcMetrics;
    prometheus::Family<prometheus::Counter>* handled_ = nullptr;
    std::string name_;
    prometheus::Histogram* latency_ = nullptr;
    // One counter per gRPC status code, created on first use.
    std::array<std::atomic<prometheus::Counter*>, 17> by_code_{};
    absl::Mutex mu_;
  };

  explicit RpcMetrics(prometheus::Registry& registry);
  // The series of one method; the pointer stays valid as long as this object.
  Method* ForMethod(const std::string& name);
  prometheus::Gauge& open_watches() { return *open_watches_; }

 private:
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Gauge* open_watches_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Method>> methods_ ABSL_GUARDED_BY(mu_);
};

grpc::Status ToGrpcStatus(const absl::Status& status);

// The metrics of method `name`, or null when `metrics` is null.
inline RpcMetrics::Method* MethodOf(RpcMetrics* metrics, const char* name) {
  return metrics ? metrics->ForMethod(name) : nullptr;
}

// Default of the most events a watch stream may have queued before it is closed with
// ABORTED (the client resumes from the last resourceVersion it saw).
inline constexpr size_t kMaxWatchBacklog = 20000;

// Computes the sizing plan of a dry-run write.
using WorkspacePlanner = std::function<v1::WorkspacePlan(const v1::Workspace&)>;

class WorkspaceGrpcService : public v1::WorkspaceService::CallbackService {
 public:
  void set_planner(WorkspacePlanner planner) { planner_ = std::move(planner); }
  void set_watch_backlog(size_t events) { watch_backlog_ = events; }

  WorkspaceGrpcService(ObjectRegistry<v1::Workspace>* registry, RpcMetrics* metrics)
      : registry_(registry),
        metrics_(metrics),
        m_create_workspace_(MethodOf(metrics, "CreateWorkspace")),
        m_get_workspace_(MethodOf(metrics, "GetWorkspace")),
        m_list_workspaces_(MethodOf(metrics, "ListWorkspaces")),
        m_update_workspace_(MethodOf(metrics, "UpdateWorkspace")),
        m_delete_workspace_(MethodOf(metrics, "DeleteWorkspace")) {}

  grpc::ServerUnaryReactor* CreateWorkspace(grpc::CallbackServerContext* ctx,
                                            const v1::CreateWorkspaceRequest* request,
                                            v1::CreateWorkspaceResponse* response) override;
  grpc::ServerUnaryReactor* GetWorkspace(grpc::CallbackServerContext* ctx,
                                         const v1::GetWorkspaceRequest* request,
                                         v1::Workspace* response) override;
  grpc::ServerUnaryReactor* ListWorkspaces(grpc::CallbackServerContext* ctx,
                                           const v1::ListWorkspacesRequest* request,
                                           v1::ListWorkspacesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateWorkspace(grpc::CallbackServerContext* ctx,
                                            const v1::UpdateWorkspaceRequest* request,
                                            v1::UpdateWorkspaceResponse* response) override;
  grpc::ServerUnaryReactor* DeleteWorkspace(grpc::CallbackServerContext* ctx,
                                            const v1::DeleteWorkspaceRequest* request,
                                            v1::DeleteWorkspaceResponse* response) override;
  grpc::ServerWriteReactor<v1::WorkspaceEvent>* WatchWorkspaces(
      grpc::CallbackServerContext* ctx, const v1::WatchWorkspacesRequest* request) override;

 private:
  ObjectRegistry<v1::Workspace>* registry_;
  RpcMetrics* metrics_;
  WorkspacePlanner planner_;
  size_t watch_backlog_ = kMaxWatchBacklog;
  // Resolved once, so that recording an RPC is lock-free.
  RpcMetrics::Method* const m_create_workspace_;
  RpcMetrics::Method* const m_get_workspace_;
  RpcMetrics::Method* const m_list_workspaces_;
  RpcMetrics::Method* const m_update_workspace_;
  RpcMetrics::Method* const m_delete_workspace_;
};

class ConfigGrpcService : public v1::ConfigService::CallbackService {
 public:
  ConfigGrpcService(ObjectRegistry<v1::ConfigMap>* registry, RpcMetrics* metrics)
      : registry_(registry),
        metrics_(metrics),
        m_create_config_map_(MethodOf(metrics, "CreateConfigMap")),
        m_get_config_map_(MethodOf(metrics, "GetConfigMap")),
        m_list_config_maps_(MethodOf(metrics, "ListConfigMaps")),
        m_update_config_map_(MethodOf(metrics, "UpdateConfigMap")),
        m_delete_config_map_(MethodOf(metrics, "DeleteConfigMap")) {}

  grpc::ServerUnaryReactor* CreateConfigMap(grpc::CallbackServerContext* ctx,
                                            const v1::WriteConfigMapRequest* request,
                                            v1::ConfigMap* response) override;
  grpc::ServerUnaryReactor* GetConfigMap(grpc::CallbackServerContext* ctx,
                                         const v1::ObjectKey* request,
                                         v1::ConfigMap* response) override;
  grpc::ServerUnaryReactor* ListConfigMaps(grpc::CallbackServerContext* ctx,
                                           const v1::ListRequest* request,
                                           v1::ListConfigMapsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateConfigMap(grpc::CallbackServerContext* ctx,
                                            const v1::WriteConfigMapRequest* request,
                                            v1::ConfigMap* response) override;
  grpc::ServerUnaryReactor* DeleteConfigMap(grpc::CallbackServerContext* ctx,
                                            const v1::DeleteRequest* request,
                                            v1::DeleteResponse* response) override;

 private:
  ObjectRegistry<v1::ConfigMap>* registry_;
  RpcMetrics* metrics_;
  // Resolved once, so that recording an RPC is lock-free.
  RpcMetrics::Method* const m_create_config_map_;
  RpcMetrics::Method* const m_get_config_map_;
  RpcMetrics::Method* const m_list_config_maps_;
  RpcMetrics::Method* const m_update_config_map_;
  RpcMetrics::Method* const m_delete_config_map_;
};

class SecretGrpcService : public v1::SecretService::CallbackService {
 public:
  SecretGrpcService(ObjectRegistry<v1::Secret>* registry, RpcMetrics* metrics)
      : registry_(registry),
        metrics_(metrics),
        m_create_secret_(MethodOf(metrics, "CreateSecret")),
        m_get_secret_(MethodOf(metrics, "GetSecret")),
        m_list_secrets_(MethodOf(metrics, "ListSecrets")),
        m_update_secret_(MethodOf(metrics, "UpdateSecret")),
        m_delete_secret_(MethodOf(metrics, "DeleteSecret")) {}

  grpc::ServerUnaryReactor* CreateSecret(grpc::CallbackServerContext* ctx,
                                         const v1::WriteSecretRequest* request,
                                         v1::Secret* response) override;
  grpc::ServerUnaryReactor* GetSecret(grpc::CallbackServerContext* ctx,
                                      const v1::ObjectKey* request,
                                      v1::Secret* response) override;
  grpc::ServerUnaryReactor* ListSecrets(grpc::CallbackServerContext* ctx,
                                        const v1::ListRequest* request,
                                        v1::ListSecretsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateSecret(grpc::CallbackServerContext* ctx,
                                         const v1::WriteSecretRequest* request,
                                         v1::Secret* response) override;
  grpc::ServerUnaryReactor* DeleteSecret(grpc::CallbackServerContext* ctx,
                                         const v1::DeleteRequest* request,
                                         v1::DeleteResponse* response) override;

 private:
  ObjectRegistry<v1::Secret>* registry_;
  RpcMetrics* metrics_;
  // Resolved once, so that recording an RPC is lock-free.
  RpcMetrics::Method* const m_create_secret_;
  RpcMetrics::Method* const m_get_secret_;
  RpcMetrics::Method* const m_list_secrets_;
  RpcMetrics::Method* const m_update_secret_;
  RpcMetrics::Method* const m_delete_secret_;
};

class PresetGrpcService : public v1::PresetService::CallbackService {
 public:
  PresetGrpcService(const presets::Catalog* catalog, std::string cloud)
      : catalog_(catalog), cloud_(std::move(cloud)) {}
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* ListSkus(grpc::CallbackServerContext* ctx,
                                     const v1::ListSkusRequest* request,
                                     v1::ListSkusResponse* response) override;
  grpc::ServerUnaryReactor* GetSku(grpc::CallbackServerContext* ctx,
                                   const v1::GetSkuRequest* request,
                                   v1::SkuInfo* response) override;

 private:
  const presets::Catalog* catalog_;
  std::string cloud_;
};

class SystemGrpcService : public v1::SystemService::CallbackService {
 public:
  SystemGrpcService(store::Store* store, bool dev_mode) : store_(store), dev_mode_(dev_mode) {}
  grpc::ServerUnaryReactor* GetVersion(grpc::CallbackServerContext* ctx,
                                       const v1::GetVersionRequest* request,
                                       v1::VersionInfo* response) override;

 private:
  store::Store* store_;
  bool dev_mode_;
};

}  // namespace kaito
