// Request bodies in the Kubernetes protobuf encoding (application/vnd.kubernetes.protobuf),
// which kubectl uses to create core objects (`kubectl create secret|configmap`): decoded
// into the JSON the shim takes. Custom resources have no protobuf encoding, as in
// Kubernetes: a workspace in protobuf is refused.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "tools/kube-shim/resources.h"

namespace kaito::shim {

inline constexpr char kProtobufMediaType[] = "application/vnd.kubernetes.protobuf";

bool IsProtobuf(const std::string& content_type);

// The object of `body` (magic "k8s\0", then a runtime.Unknown) as JSON.
// INVALID_ARGUMENT when it does not decode; UNIMPLEMENTED for a kind with no protobuf
// encoding.
absl::StatusOr<nlohmann::ordered_json> ProtobufToJson(const ResourceType& resource,
                                                      const std::string& body);

}  // namespace kaito::shim
