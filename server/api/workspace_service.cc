#include "server/api/workspace_service.h"

#include "server/api/unary_call.h"
#include "server/api/watch_reactor.h"

namespace kaito::server {


ServerUnaryReactor* WorkspaceGrpcService::CreateWorkspace(
    CallbackServerContext* ctx, const v1::CreateWorkspaceRequest* request,
    v1::CreateWorkspaceResponse* response) {
  using W = v1::Workspace;
  return Write<W>(
      UnaryCall(ctx, m_create_workspace_), response,
      [planner = request->dry_run() ? planner_ : nullptr](v1::CreateWorkspaceResponse& r,
                                                          WriteResult<W>& w) {
        if (planner) *r.mutable_plan() = planner(w.object);
        *r.mutable_workspace() = std::move(w.object);
        for (auto& warning : w.warnings) r.add_warnings(std::move(warning));
      },
      [&](WriteDone<W> done) {
        registry_->Create(request->workspace(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* WorkspaceGrpcService::GetWorkspace(CallbackServerContext* ctx,
                                                       const v1::GetWorkspaceRequest* request,
                                                       v1::Workspace* response) {
  return GetInto(UnaryCall(ctx, m_get_workspace_), registry_, request->namespace_(),
                 request->name(), response);
}

ServerUnaryReactor* WorkspaceGrpcService::ListWorkspaces(
    CallbackServerContext* ctx, const v1::ListWorkspacesRequest* request,
    v1::ListWorkspacesResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_workspaces_), registry_, request->namespace_(),
                  request->label_selector(), request->page_size(), request->page_token(),
                  response);
}

ServerUnaryReactor* WorkspaceGrpcService::UpdateWorkspace(
    CallbackServerContext* ctx, const v1::UpdateWorkspaceRequest* request,
    v1::UpdateWorkspaceResponse* response) {
  using W = v1::Workspace;
  return Write<W>(
      UnaryCall(ctx, m_update_workspace_), response,
      [planner = request->dry_run() ? planner_ : nullptr](v1::UpdateWorkspaceResponse& r,
                                                          WriteResult<W>& w) {
        if (planner) *r.mutable_plan() = planner(w.object);
        *r.mutable_workspace() = std::move(w.object);
        for (auto& warning : w.warnings) r.add_warnings(std::move(warning));
      },
      [&](WriteDone<W> done) {
        registry_->Update(request->workspace(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* WorkspaceGrpcService::DeleteWorkspace(
    CallbackServerContext* ctx, const v1::DeleteWorkspaceRequest* request,
    v1::DeleteWorkspaceResponse* response) {
  using W = v1::Workspace;
  return Write<W>(
      UnaryCall(ctx, m_delete_workspace_), response,
      [](v1::DeleteWorkspaceResponse& r, WriteResult<W>& w) {
        *r.mutable_workspace() = std::move(w.object);
        r.set_deleted(w.deleted);
      },
      [&](WriteDone<W> done) {
        registry_->Delete(request->namespace_(), request->name(), request->resource_version(),
                          std::move(done));
      });
}

grpc::ServerWriteReactor<v1::WorkspaceEvent>* WorkspaceGrpcService::WatchWorkspaces(
    CallbackServerContext* ctx, const v1::WatchWorkspacesRequest* request) {
  return new WatchReactor<v1::Workspace, v1::WorkspaceEvent, v1::WatchWorkspacesRequest>(
      registry_, metrics_, watch_backlog_, *request);
}

}  // namespace kaito::server
