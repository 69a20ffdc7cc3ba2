#include "server/provisioning/grpc_provisioner_client.h"

#include <chrono>

namespace kaito::server {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

// The state of one call; deletes itself when the reply arrives.
template <typename Request, typename Reply, typename Done>
struct Call {
  grpc::ClientContext context;
  Request request;
  Reply reply;
  Done done;
};

}  // namespace

GrpcProvisionerClient::GrpcProvisionerClient(std::shared_ptr<grpc::Channel> channel,
                                             absl::Duration deadline)
    : stub_(v1::ProvisionerService::NewStub(std::move(channel))), deadline_(deadline) {}

void GrpcProvisionerClient::CreateNode(const v1::CreateNodeRequest& request,
                                       provisioner::NodeDone done) {
  using C = Call<v1::CreateNodeRequest, v1::ProvisionedNode, provisioner::NodeDone>;
  auto* call = new C{};
  call->request = request;
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  stub_->async()->CreateNode(&call->context, &call->request, &call->reply, [call](grpc::Status s) {
    std::unique_ptr<C> owned(call);
    if (!s.ok()) return std::move(owned->done)(FromGrpc(s));
    std::move(owned->done)(std::move(owned->reply));
  });
}

void GrpcProvisionerClient::GetNode(const std::string& claim_name, provisioner::NodeDone done) {
  using C = Call<v1::GetNodeRequest, v1::ProvisionedNode, provisioner::NodeDone>;
  auto* call = new C{};
  call->request.set_claim_name(claim_name);
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  stub_->async()->GetNode(&call->context, &call->request, &call->reply, [call](grpc::Status s) {
    std::unique_ptr<C> owned(call);
    if (!s.ok()) return std::move(owned->done)(FromGrpc(s));
    std::move(owned->done)(std::move(owned->reply));
  });
}

void GrpcProvisionerClient::DeleteNode(const std::string& claim_name,
                                       provisioner::DeleteDone done) {
  using C = Call<v1::DeleteNodeRequest, v1::DeleteNodeResponse, provisioner::DeleteDone>;
  auto* call = new C{};
  call->request.set_claim_name(claim_name);
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  stub_->async()->DeleteNode(&call->context, &call->request, &call->reply, [call](grpc::Status s) {
    std::unique_ptr<C> owned(call);
    if (!s.ok()) return std::move(owned->done)(FromGrpc(s));
    std::move(owned->done)(owned->reply.gone());
  });
}

void GrpcProvisionerClient::ListNodes(provisioner::ListDone done) {
  using C = Call<v1::ListProvisionedNodesRequest, v1::ListProvisionedNodesResponse,
                 provisioner::ListDone>;
  auto* call = new C{};
  call->done = std::move(done);
  call->context.set_deadline(absl::ToChronoTime(absl::Now() + deadline_));
  stub_->async()->ListNodes(&call->context, &call->request, &call->reply, [call](grpc::Status s) {
    std::unique_ptr<C> owned(call);
    if (!s.ok()) return std::move(owned->done)(FromGrpc(s));
    std::vector<v1::ProvisionedNode> nodes(owned->reply.nodes().begin(),
                                           owned->reply.nodes().end());
    std::move(owned->done)(std::move(nodes));
  });
}

void GrpcProvisionerClient::GetQuota(const v1::GetQuotaRequest& request,
                                     provisioner::QuotaDone done) {
  using C = Call<v1::GetQuotaRequest, v1::QuotaHeadroom, provisioner::QuotaDone>;
  auto* call = new C{};
  call->request = request;
  call->done = std::move(done);
  // A dry run waits for it: a provisioner that is down costs seconds, not the full deadline.
  call->context.set_deadline(
      absl::ToChronoTime(absl::Now() + std::min(deadline_, absl::Seconds(3))));
  stub_->async()->GetQuota(&call->context, &call->request, &call->reply, [call](grpc::Status s) {
    std::unique_ptr<C> owned(call);
    if (!s.ok()) return std::move(owned->done)(FromGrpc(s));
    std::move(owned->done)(std::move(owned->reply));
  });
}

}  // namespace kaito::server
