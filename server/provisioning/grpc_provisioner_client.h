// ProvisionerClient over gRPC to kaito-provisioner (`kaito-server --provisioner H:P`),
// with the callback API: no thread waits for a reply. Every call has a deadline; a
// transport failure completes with UNAVAILABLE (the node claim controller retries).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "kaito/v1/provisioner.grpc.pb.h"
#include "server/provisioning/provisioner_client.h"

namespace kaito::server {

class GrpcProvisionerClient : public ProvisionerClient {
 public:
  GrpcProvisionerClient(std::shared_ptr<grpc::Channel> channel, absl::Duration deadline);

  void CreateNode(const v1::CreateNodeRequest& request, provisioner::NodeDone done) override;
  void GetNode(const std::string& claim_name, provisioner::NodeDone done) override;
  void DeleteNode(const std::string& claim_name, provisioner::DeleteDone done) override;
  void ListNodes(provisioner::ListDone done) override;
  void GetQuota(const v1::GetQuotaRequest& request, provisioner::QuotaDone done) override;
  std::string Name() const override { return "grpc"; }

 private:
  std::unique_ptr<v1::ProvisionerService::Stub> stub_;
  const absl::Duration deadline_;
};

}  // namespace kaito::server
