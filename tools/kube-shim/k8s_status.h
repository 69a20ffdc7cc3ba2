// Errors as Kubernetes clients expect them: a `Status` object (kind Status, apiVersion v1)
// with the HTTP code, a reason and a message worded as kube-apiserver words it, so that
// kubectl prints `Error from server (NotFound): workspaces.kaito.sh "x" not found` and
// client libraries classify the error by reason (IsNotFound, IsConflict, ...).
#pragma once

#include <string>

#include <grpcpp/grpcpp.h>
#include <nlohmann/json.hpp>

#include "tools/kube-shim/resources.h"

namespace kaito::shim {

struct ApiError {
  int http_code = 500;
  std::string reason;  // e.g. "NotFound", "Invalid"
  std::string message;
  nlohmann::ordered_json details;  // Status.details, or null.
  int retry_after_seconds = 0;     // > 0: a Retry-After header too.
};

// A Kubernetes Status object for `error`.
nlohmann::ordered_json StatusObject(const ApiError& error);
// The Status of a successful delete of `name`.
nlohmann::ordered_json SuccessStatus(const ResourceType& resource, const std::string& name);

// What kaito-server's `status` means for `resource` `name` (empty for a collection):
// INVALID_ARGUMENT with field violations becomes 422 Invalid with one cause per field,
// NOT_FOUND 404, ALREADY_EXISTS 409 AlreadyExists, ABORTED and FAILED_PRECONDITION
// 409 Conflict, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504,
// OUT_OF_RANGE 410 Expired, UNAUTHENTICATED 401, PERMISSION_DENIED 403.
ApiError FromGrpc(const grpc::Status& status, const ResourceType& resource,
                  const std::string& name);

ApiError BadRequest(const std::string& message);
ApiError NotFoundPath();
ApiError MethodNotAllowed(const std::string& message);
ApiError UnsupportedMediaType(const std::string& message);
// 422 Invalid with a single cause.
ApiError Invalid(const ResourceType& resource, const std::string& name, const std::string& field,
                 const std::string& message);

}  // namespace kaito::shim
