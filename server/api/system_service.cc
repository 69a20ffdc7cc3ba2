#include "server/api/system_service.h"

#include "common/version.h"
#include "server/api/unary_call.h"

namespace kaito::server {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;


ServerUnaryReactor* SystemGrpcService::GetVersion(CallbackServerContext* ctx,
                                                  const v1::GetVersionRequest*,
                                                  v1::VersionInfo* response) {
  if (auto* refused = Refused(auth_, ctx, {Verb::kGet, "version", "", ""})) return refused;
  response->set_version(Version());
  response->set_store(store_->Backend());
  response->set_resource_version(std::to_string(store_->CurrentRevision()));
  response->set_dev_mode(dev_mode_);
  response->set_replica(replica_);
  if (leader_) response->set_leader(leader_());
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace kaito::server
