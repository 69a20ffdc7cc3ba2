// OpenAPI documents for the served kinds, generated from the protobuf descriptors (the
// proto3 JSON names are the Kubernetes names, so a message's schema is the kind's schema):
// /openapi/v2 (Swagger 2.0 definitions) and /openapi/v3 (an index, and a document per group
// version with its paths and schemas). Each kind's schema carries
// x-kubernetes-group-version-kind, by which `kubectl explain` finds it; each PATCH
// operation lists the `fieldValidation` parameter, by which kubectl knows that the server
// validates fields itself (it is always strict), and the patch media types served, by
// which kubectl picks JSON merge patch for workspaces.
#pragma once

#include <optional>
#include <string>

#include <google/protobuf/descriptor.h>
#include <nlohmann/json.hpp>

namespace kaito::shim {

// The schema of `message` with every nested message inline; `description` from the
// proto comments where its descriptors carry them (the kinds' schemas are built from
// kaitoctl's documented descriptor pool, the API compiled with its comments).
nlohmann::ordered_json MessageSchema(const google::protobuf::Descriptor* message);

nlohmann::ordered_json OpenApiV2();
nlohmann::ordered_json OpenApiV3Index();
// `group_version` is "api/v1" or "apis/GROUP/VERSION"; nullopt when not served.
std::optional<nlohmann::ordered_json> OpenApiV3(const std::string& group_version);

}  // namespace kaito::shim
