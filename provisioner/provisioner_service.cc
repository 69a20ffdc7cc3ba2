#include "provisioner/provisioner_service.h"

#include <utility>

#include "absl/time/clock.h"
#include "common/field_errors.h"
#include "provisioner/provider/request_validation.h"

namespace kaito::provisioner {

grpc::ServerUnaryReactor* ProvisionerGrpcService::CreateNode(grpc::CallbackServerContext* ctx,
                                                             const v1::CreateNodeRequest* request,
                                                             v1::ProvisionedNode* response) {
  UnaryCall call(ctx);
  if (absl::Status s = ValidateCreateNodeRequest(*request); !s.ok()) return call.Finish(s);
  provider_->CreateNode(*request, [call, response](absl::StatusOr<v1::ProvisionedNode> node) {
    if (node.ok()) *response = std::move(*node);
    call.Finish(node.status());
  });
  return call.reactor();
}

grpc::ServerUnaryReactor* ProvisionerGrpcService::GetNode(grpc::CallbackServerContext* ctx,
                                                          const v1::GetNodeRequest* request,
                                                          v1::ProvisionedNode* response) {
  UnaryCall call(ctx);
  if (absl::Status s = ValidateClaimName(request->claim_name()); !s.ok()) return call.Finish(s);
  provider_->GetNode(request->claim_name(),
                     [call, response](absl::StatusOr<v1::ProvisionedNode> node) {
                       if (node.ok()) *response = std::move(*node);
                       call.Finish(node.status());
                     });
  return call.reactor();
}

grpc::ServerUnaryReactor* ProvisionerGrpcService::DeleteNode(grpc::CallbackServerContext* ctx,
                                                             const v1::DeleteNodeRequest* request,
                                                             v1::DeleteNodeResponse* response) {
  UnaryCall call(ctx);
  if (absl::Status s = ValidateClaimName(request->claim_name()); !s.ok()) return call.Finish(s);
  provider_->DeleteNode(request->claim_name(), [call, response](absl::StatusOr<bool> gone) {
    if (gone.ok()) response->set_gone(*gone);
    call.Finish(gone.status());
  });
  return call.reactor();
}

grpc::ServerUnaryReactor* ProvisionerGrpcService::ListNodes(
    grpc::CallbackServerContext* ctx, const v1::ListProvisionedNodesRequest* request,
    v1::ListProvisionedNodesResponse* response) {
  UnaryCall call(ctx);
  provider_->ListNodes([call, response](absl::StatusOr<std::vector<v1::ProvisionedNode>> nodes) {
    if (nodes.ok()) {
      for (v1::ProvisionedNode& node : *nodes) *response->add_nodes() = std::move(node);
    }
    call.Finish(nodes.status());
  });
  return call.reactor();
}

grpc::ServerUnaryReactor* ProvisionerGrpcService::GetQuota(grpc::CallbackServerContext* ctx,
                                                           const v1::GetQuotaRequest* request,
                                                           v1::QuotaHeadroom* response) {
  UnaryCall call(ctx);
  if (absl::Status s = ValidateGetQuotaRequest(*request); !s.ok()) return call.Finish(s);
  provider_->GetQuota(*request, [call, response](absl::StatusOr<v1::QuotaHeadroom> headroom) {
    if (headroom.ok()) *response = std::move(*headroom);
    call.Finish(headroom.status());
  });
  return call.reactor();
}

grpc::ServerUnaryReactor* SimulatedCloudGrpcService::SetFaults(grpc::CallbackServerContext* ctx,
                                                               const v1::SetFaultsRequest* request,
                                                               v1::SetFaultsResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  FieldErrors errors;
  for (int i = 0; i < request->faults_size(); ++i) {
    if (request->faults(i).error_code().empty()) {
      errors.Add("faults[" + std::to_string(i) + "].error_code", "Required value");
    }
  }
  if (absl::Status s = errors.ToStatus("SetFaults request"); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  provider_->SetFaults({request->faults().begin(), request->faults().end()});
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace kaito::provisioner
