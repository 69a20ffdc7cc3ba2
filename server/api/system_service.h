// SystemService: version, store backend and revision, dev mode.
#pragma once

#include <functional>
#include <string>

#include "server/auth/authorizer.h"

#include "kaito/v1/system.grpc.pb.h"
#include "server/store/store.h"

namespace kaito::server {

class SystemGrpcService : public v1::SystemService::CallbackService {
 public:
  SystemGrpcService(store::Store* store, bool dev_mode, Authorizer* auth = nullptr)
      : store_(store), dev_mode_(dev_mode), auth_(auth) {}
  grpc::ServerUnaryReactor* GetVersion(grpc::CallbackServerContext* ctx,
                                       const v1::GetVersionRequest* request,
                                       v1::VersionInfo* response) override;

  // This replica's name, and the current leader's (set before serving).
  void set_leadership(std::string replica, std::function<std::string()> leader) {
    replica_ = std::move(replica);
    leader_ = std::move(leader);
  }

 private:
  std::string replica_;
  std::function<std::string()> leader_;
  store::Store* store_;
  bool dev_mode_;
  Authorizer* auth_;
};

}  // namespace kaito::server
