// ConfigService and SecretService: one template (object_service.h), two thin adapters.
// Secret values are redacted by the secret policy on every reply.
#pragma once

#include "kaito/v1/config.grpc.pb.h"
#include "server/api/object_service.h"

namespace kaito::server {

class ConfigGrpcService : public v1::ConfigService::CallbackService {
 public:
  explicit ConfigGrpcService(ObjectRegistry<v1::ConfigMap>* registry, Authorizer* auth = nullptr)
      : h_(registry, auth, &v1::WriteConfigMapRequest::config_map) {}

  ServerUnaryReactor* CreateConfigMap(CallbackServerContext* ctx,
                                      const v1::WriteConfigMapRequest* request,
                                      v1::ConfigMap* response) override {
    return h_.Create(ctx, request, response);
  }
  ServerUnaryReactor* GetConfigMap(CallbackServerContext* ctx, const v1::ObjectKey* request,
                                   v1::ConfigMap* response) override {
    return h_.Get(ctx, request, response);
  }
  ServerUnaryReactor* ListConfigMaps(CallbackServerContext* ctx, const v1::ListRequest* request,
                                     v1::ListConfigMapsResponse* response) override {
    return h_.List(ctx, request, response);
  }
  ServerUnaryReactor* UpdateConfigMap(CallbackServerContext* ctx,
                                      const v1::WriteConfigMapRequest* request,
                                      v1::ConfigMap* response) override {
    return h_.Update(ctx, request, response);
  }
  ServerUnaryReactor* DeleteConfigMap(CallbackServerContext* ctx, const v1::DeleteRequest* request,
                                      v1::DeleteResponse* response) override {
    return h_.Delete(ctx, request, response);
  }

 private:
  ObjectHandlers<v1::ConfigMap, v1::WriteConfigMapRequest, v1::ListConfigMapsResponse> h_;
};

class SecretGrpcService : public v1::SecretService::CallbackService {
 public:
  explicit SecretGrpcService(ObjectRegistry<v1::Secret>* registry, Authorizer* auth = nullptr)
      : h_(registry, auth, &v1::WriteSecretRequest::secret) {}

  ServerUnaryReactor* CreateSecret(CallbackServerContext* ctx,
                                   const v1::WriteSecretRequest* request,
                                   v1::Secret* response) override {
    return h_.Create(ctx, request, response);
  }
  ServerUnaryReactor* GetSecret(CallbackServerContext* ctx, const v1::ObjectKey* request,
                                v1::Secret* response) override {
    return h_.Get(ctx, request, response);
  }
  ServerUnaryReactor* ListSecrets(CallbackServerContext* ctx, const v1::ListRequest* request,
                                  v1::ListSecretsResponse* response) override {
    return h_.List(ctx, request, response);
  }
  ServerUnaryReactor* UpdateSecret(CallbackServerContext* ctx,
                                   const v1::WriteSecretRequest* request,
                                   v1::Secret* response) override {
    return h_.Update(ctx, request, response);
  }
  ServerUnaryReactor* DeleteSecret(CallbackServerContext* ctx, const v1::DeleteRequest* request,
                                   v1::DeleteResponse* response) override {
    return h_.Delete(ctx, request, response);
  }

 private:
  ObjectHandlers<v1::Secret, v1::WriteSecretRequest, v1::ListSecretsResponse> h_;
};

}  // namespace kaito::server
