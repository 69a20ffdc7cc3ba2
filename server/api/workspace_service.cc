#include "server/api/workspace_service.h"

#include "presets/planner.h"
#include "server/api/unary_call.h"
#include "server/api/watch_reactor.h"

namespace kaito::server {

template <typename Resp>
WriteDone<v1::Workspace> WorkspaceGrpcService::FinishWrite(UnaryCall call, Resp* response,
                                                           bool dry_run) {
  WorkspacePlanner planner = dry_run ? planner_ : nullptr;
  QuotaReader quota = dry_run ? quota_reader_ : nullptr;
  return [call, response, planner = std::move(planner),
          quota = std::move(quota)](absl::StatusOr<WriteResult<v1::Workspace>> w) mutable {
    if (!w.ok()) {
      call.Finish(w.status());
      return;
    }
    if (planner) *response->mutable_plan() = planner(w->object);
    *response->mutable_workspace() = std::move(w->object);
    for (auto& warning : w->warnings) response->add_warnings(std::move(warning));
    const v1::WorkspacePlan& plan = response->plan();
    // Only nodes that would be created draw on the cloud's quota.
    if (!quota || plan.target_node_count() <= 0 || plan.gpus_per_node() <= 0 ||
        plan.instance_type().empty() || plan.instance_type() == presets::kPlanBringYourOwnNodes) {
      call.Finish(absl::OkStatus());
      return;
    }
    v1::GetQuotaRequest request;
    request.set_instance_type(plan.instance_type());
    request.set_nodes(plan.target_node_count());
    quota(request, [call, response](v1::QuotaHeadroom headroom) mutable {
      *response->mutable_plan()->mutable_quota() = std::move(headroom);
      call.Finish(absl::OkStatus());
    });
  };
}

ServerUnaryReactor* WorkspaceGrpcService::CreateWorkspace(CallbackServerContext* ctx,
                                                          const v1::CreateWorkspaceRequest* request,
                                                          v1::CreateWorkspaceResponse* response) {
  UnaryCall call(ctx);
  const auto& meta = request->workspace().metadata();
  if (!Permitted(auth_, ctx, call,
                 {Verb::kCreate, "workspaces", WriteNamespace(meta, false), meta.name()})) {
    return call.reactor();
  }
  registry_->Create(request->workspace(), request->dry_run(),
                    FinishWrite(call, response, request->dry_run()));
  return call.reactor();
}

ServerUnaryReactor* WorkspaceGrpcService::GetWorkspace(CallbackServerContext* ctx,
                                                       const v1::GetWorkspaceRequest* request,
                                                       v1::Workspace* response) {
  UnaryCall call(ctx);
  if (!Permitted(
          auth_, ctx, call,
          {Verb::kGet, "workspaces", ReadNamespace(request->namespace_()), request->name()})) {
    return call.reactor();
  }
  return GetInto(call, registry_, request->namespace_(), request->name(), response);
}

ServerUnaryReactor* WorkspaceGrpcService::ListWorkspaces(CallbackServerContext* ctx,
                                                         const v1::ListWorkspacesRequest* request,
                                                         v1::ListWorkspacesResponse* response) {
  UnaryCall call(ctx);
  if (!Permitted(auth_, ctx, call, {Verb::kList, "workspaces", request->namespace_(), ""})) {
    return call.reactor();
  }
  return ListInto(call, registry_, request->namespace_(), request->label_selector(),
                  request->page_size(), request->page_token(), response);
}

ServerUnaryReactor* WorkspaceGrpcService::UpdateWorkspace(CallbackServerContext* ctx,
                                                          const v1::UpdateWorkspaceRequest* request,
                                                          v1::UpdateWorkspaceResponse* response) {
  UnaryCall call(ctx);
  const auto& meta = request->workspace().metadata();
  if (!Permitted(auth_, ctx, call,
                 {Verb::kUpdate, "workspaces", WriteNamespace(meta, false), meta.name()})) {
    return call.reactor();
  }
  registry_->Update(request->workspace(), request->dry_run(),
                    FinishWrite(call, response, request->dry_run()));
  return call.reactor();
}

ServerUnaryReactor* WorkspaceGrpcService::DeleteWorkspace(CallbackServerContext* ctx,
                                                          const v1::DeleteWorkspaceRequest* request,
                                                          v1::DeleteWorkspaceResponse* response) {
  using W = v1::Workspace;
  UnaryCall call(ctx);
  if (!Permitted(
          auth_, ctx, call,
          {Verb::kDelete, "workspaces", ReadNamespace(request->namespace_()), request->name()})) {
    return call.reactor();
  }
  return Write<W>(
      call, response,
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
  absl::Status allowed = absl::OkStatus();
  if (auth_) {
    allowed =
        auth_->Check(*ctx, {Verb::kWatch, "workspaces", request->namespace_(), request->name()})
            .status();
  }
  return new WatchReactor<v1::Workspace, v1::WorkspaceEvent, v1::WatchWorkspacesRequest>(
      registry_, metrics_, watch_, watch_limits_, watch_quota_.get(), ctx, *request, allowed);
}

}  // namespace kaito::server
