// gRPC server reflection, version v1 (grpc.reflection.v1), beside the v1alpha that
// gRPC 1.51's reflection plugin serves: newer grpcurl, Postman and grpc-java clients ask
// for v1 first. Answers from the process's generated descriptor pool.
#pragma once

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace kaito {

class ReflectionV1Service : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // `services`: the full names list_services answers with (what the server registered).
  explicit ReflectionV1Service(std::vector<std::string> services)
      : services_(std::move(services)) {}

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* ctx) override;

 private:
  const std::vector<std::string> services_;
};

}  // namespace kaito
