// PresetService: the model and SKU catalogs, read-only.
#pragma once

#include "server/auth/authorizer.h"

#include <string>

#include "kaito/v1/presets.grpc.pb.h"
#include "presets/catalog.h"

namespace kaito::server {

class PresetGrpcService : public v1::PresetService::CallbackService {
 public:
  PresetGrpcService(const presets::Catalog* catalog, std::string cloud,
                    Authorizer* auth = nullptr)
      : catalog_(catalog), cloud_(std::move(cloud)), auth_(auth) {}
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* ListSkus(grpc::CallbackServerContext* ctx,
                                     const v1::ListSkusRequest* request,
                                     v1::ListSkusResponse* response) override;
  grpc::ServerUnaryReactor* GetSku(grpc::CallbackServerContext* ctx,
                                   const v1::GetSkuRequest* request,
                                   v1::SkuInfo* response) override;

 private:
  const presets::Catalog* catalog_;
  std::string cloud_;
  Authorizer* auth_;
};

}  // namespace kaito::server
