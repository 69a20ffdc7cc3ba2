// WorkspaceService over the workspace registry: a thin callback-API adapter. Handlers
// never block: reads answer from the cache, writes finish from the store's completion.
#pragma once

#include <functional>

#include "kaito/v1/workspace.grpc.pb.h"
#include "common/rpc_metrics.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

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

}  // namespace kaito::server
