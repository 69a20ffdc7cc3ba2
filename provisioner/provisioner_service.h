// The gRPC adapters of kaito-provisioner, thin over a `NodeProvider`: check the request
// (INVALID_ARGUMENT naming the field), forward it, map the completion to the reply.
// Callback API: no handler blocks; each call finishes exactly once, from the provider's
// completion.
#pragma once

#include <grpcpp/grpcpp.h>

#include "kaito/v1/provisioner.grpc.pb.h"
#include "provisioner/provider/node_provider.h"
#include "provisioner/provider/simulated_provider.h"
#include "common/rpc_metrics.h"

namespace kaito::provisioner {

// ProvisionerService over any provider (its server's interceptor records the calls). `provider`
// must outlive the service and every call in flight.
class ProvisionerGrpcService : public v1::ProvisionerService::CallbackService {
 public:
  explicit ProvisionerGrpcService(NodeProvider* provider) : provider_(provider) {}

  grpc::ServerUnaryReactor* CreateNode(grpc::CallbackServerContext* ctx,
                                       const v1::CreateNodeRequest* request,
                                       v1::ProvisionedNode* response) override;
  grpc::ServerUnaryReactor* GetNode(grpc::CallbackServerContext* ctx,
                                    const v1::GetNodeRequest* request,
                                    v1::ProvisionedNode* response) override;
  grpc::ServerUnaryReactor* DeleteNode(grpc::CallbackServerContext* ctx,
                                       const v1::DeleteNodeRequest* request,
                                       v1::DeleteNodeResponse* response) override;
  grpc::ServerUnaryReactor* ListNodes(grpc::CallbackServerContext* ctx,
                                      const v1::ListProvisionedNodesRequest* request,
                                      v1::ListProvisionedNodesResponse* response) override;
  grpc::ServerUnaryReactor* GetQuota(grpc::CallbackServerContext* ctx,
                                     const v1::GetQuotaRequest* request,
                                     v1::QuotaHeadroom* response) override;

 private:
  NodeProvider* const provider_;
};

// SimulatedCloudService: the fault knobs of a `SimulatedProvider`. Self-contained, so
// kaito-server can serve it in dev mode over its in-process simulated cloud.
class SimulatedCloudGrpcService : public v1::SimulatedCloudService::CallbackService {
 public:
  explicit SimulatedCloudGrpcService(SimulatedProvider* provider) : provider_(provider) {}

  // Every fault's `error_code` is required (INVALID_ARGUMENT naming `faults[I].error_code`).
  grpc::ServerUnaryReactor* SetFaults(grpc::CallbackServerContext* ctx,
                                      const v1::SetFaultsRequest* request,
                                      v1::SetFaultsResponse* response) override;

 private:
  SimulatedProvider* const provider_;
};

}  // namespace kaito::provisioner
