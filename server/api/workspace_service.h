// WorkspaceService over the workspace registry: a thin callback-API adapter. Handlers
// never block: reads answer from the cache, writes finish from the store's completion.
#pragma once

#include <functional>

#include "kaito/v1/workspace.grpc.pb.h"
#include "common/rpc_metrics.h"
#include "server/api/stream_quota.h"
#include "server/auth/authorizer.h"
#include "server/api/watch_reactor.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// Computes the sizing plan of a dry-run write.
using WorkspacePlanner = std::function<v1::WorkspacePlan(const v1::Workspace&)>;
// Asks the provisioner for the quota headroom of a plan's nodes; `done` always runs (once),
// with known = false and the reason when the provisioner cannot tell.
using QuotaReader =
    std::function<void(const v1::GetQuotaRequest&, std::function<void(v1::QuotaHeadroom)> done)>;

class WorkspaceGrpcService : public v1::WorkspaceService::CallbackService {
 public:
  void set_planner(WorkspacePlanner planner) { planner_ = std::move(planner); }
  // Without one (no provisioner), dry-run plans carry no quota.
  void set_quota_reader(QuotaReader reader) { quota_reader_ = std::move(reader); }
  // Call before serving.
  void set_watch_limits(const WatchLimits& limits) { watch_limits_ = limits; }
  void set_watch_quota(StreamLimits limits) {
    watch_quota_ = std::make_unique<StreamQuota>("watches", limits);
  }
  // The quota of open watches, which other services' watches share.
  StreamQuota* watch_quota() { return watch_quota_.get(); }

  WorkspaceGrpcService(ObjectRegistry<v1::Workspace>* registry, RpcMetrics* metrics,
                       Authorizer* auth = nullptr)
      : registry_(registry),
        metrics_(metrics),
        auth_(auth),
        watch_(StreamMethod(metrics, "/kaito.v1.WorkspaceService/WatchWorkspaces",
                            RpcMetrics::Type::kServerStream)) {}

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
  // A write's completion: fills the response (with the plan and its quota headroom for a
  // dry run) and finishes the call.
  template <typename Resp>
  WriteDone<v1::Workspace> FinishWrite(UnaryCall call, Resp* response, bool dry_run);

  ObjectRegistry<v1::Workspace>* registry_;
  RpcMetrics* metrics_;
  Authorizer* auth_;
  WorkspacePlanner planner_;
  QuotaReader quota_reader_;
  WatchLimits watch_limits_;
  std::unique_ptr<StreamQuota> watch_quota_ = std::make_unique<StreamQuota>("watches", StreamLimits{});
  RpcMetrics::Method* const watch_;
};

}  // namespace kaito::server
