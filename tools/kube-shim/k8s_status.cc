#include "tools/kube-shim/k8s_status.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_details.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;

json Details(const ResourceType& resource, const std::string& name) {
  json d = json::object();
  if (!name.empty()) d["name"] = name;
  d["group"] = resource.group;
  d["kind"] = resource.plural;
  return d;
}

// The quoted subject of a message: `workspaces.kaito.sh "x"`, or the resource alone.
std::string Subject(const ResourceType& resource, const std::string& name) {
  std::string s = resource.QualifiedName();
  if (!name.empty()) absl::StrAppend(&s, " \"", name, "\"");
  return s;
}

// Kubernetes' field.ErrorType reasons, from the wording our validation shares with it.
std::string CauseReason(const std::string& message) {
  static const std::vector<std::pair<const char*, const char*>> kPrefixes = {
      {"Required value", "FieldValueRequired"},   {"Unsupported value", "FieldValueNotSupported"},
      {"Duplicate value", "FieldValueDuplicate"}, {"Forbidden", "FieldValueForbidden"},
      {"Too long", "FieldValueTooLong"},          {"Too many", "FieldValueTooMany"},
      {"Not found", "FieldValueNotFound"},        {"unknown field", "FieldValueInvalid"}};
  for (const auto& [prefix, reason] : kPrefixes) {
    if (absl::StartsWith(message, prefix)) return reason;
  }
  return "FieldValueInvalid";
}

ApiError Make(int code, std::string reason, std::string message, json details = nullptr) {
  ApiError e;
  e.http_code = code;
  e.reason = std::move(reason);
  e.message = std::move(message);
  e.details = std::move(details);
  return e;
}

ApiError FromViolations(const std::vector<FieldError>& violations,
                        const ResourceType& resource, const std::string& name) {
  json details = Details(resource, name);
  details["kind"] = resource.kind;
  json causes = json::array();
  std::vector<std::string> parts;
  for (const auto& v : violations) {
    causes.push_back({{"reason", CauseReason(v.message)}, {"message", v.message}, {"field", v.path}});
    parts.push_back(v.path.empty() ? v.message : absl::StrCat(v.path, ": ", v.message));
  }
  details["causes"] = std::move(causes);
  std::string what = parts.size() == 1 ? parts[0] : "[" + absl::StrJoin(parts, ", ") + "]";
  std::string kind = resource.group.empty() ? resource.kind : resource.kind + "." + resource.group;
  return Make(422, "Invalid", absl::StrCat(kind, " \"", name, "\" is invalid: ", what),
              std::move(details));
}

}  // namespace

json StatusObject(const ApiError& error) {
  json s = {{"kind", "Status"},   {"apiVersion", "v1"},          {"metadata", json::object()},
            {"status", "Failure"}, {"message", error.message}, {"reason", error.reason}};
  if (!error.details.is_null()) s["details"] = error.details;
  if (error.retry_after_seconds > 0) {
    if (!s.contains("details")) s["details"] = json::object();
    s["details"]["retryAfterSeconds"] = error.retry_after_seconds;
  }
  s["code"] = error.http_code;
  return s;
}

json SuccessStatus(const ResourceType& resource, const std::string& name) {
  json s = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
            {"status", "Success"}};
  s["details"] = Details(resource, name);
  return s;
}

ApiError FromGrpc(const grpc::Status& status, const ResourceType& resource,
                  const std::string& name) {
  const std::string& msg = status.error_message();
  const std::string subject = Subject(resource, name);
  json details = Details(resource, name);
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT: {
      auto violations = FieldViolations(status);
      if (!violations.empty()) return FromViolations(violations, resource, name);
      return Make(400, "BadRequest", msg, std::move(details));
    }
    case grpc::StatusCode::NOT_FOUND:
      return Make(404, "NotFound", name.empty() ? msg : subject + " not found",
                  std::move(details));
    case grpc::StatusCode::ALREADY_EXISTS:
      return Make(409, "AlreadyExists", subject + " already exists", std::move(details));
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Make(409, "Conflict",
                  absl::StrCat("Operation cannot be fulfilled on ", subject, ": ", msg),
                  std::move(details));
    case grpc::StatusCode::RESOURCE_EXHAUSTED: {
      ApiError e = Make(429, "TooManyRequests", msg, std::move(details));
      e.retry_after_seconds = 1;
      return e;
    }
    case grpc::StatusCode::UNAVAILABLE:
      return Make(503, "ServiceUnavailable", "kaito-server is unavailable: " + msg);
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Make(504, "Timeout", "the server was unable to return a response in the time "
                                  "allotted: " + msg);
    case grpc::StatusCode::OUT_OF_RANGE:
      return Make(410, "Expired", msg);
    case grpc::StatusCode::UNAUTHENTICATED:
      return Make(401, "Unauthorized", msg);
    case grpc::StatusCode::PERMISSION_DENIED:
      // kaito-server words its refusals as kube-apiserver does ("... is forbidden: User
      // ... cannot ..."); another message gets the subject in front.
      return Make(403, "Forbidden",
                  absl::StrContains(msg, " is forbidden: ") ? msg : subject + " is forbidden: " + msg,
                  std::move(details));
    case grpc::StatusCode::UNIMPLEMENTED:
      return Make(405, "MethodNotAllowed", msg);
    default:
      return Make(500, "InternalError", "Internal error occurred: " + msg);
  }
}

ApiError BadRequest(const std::string& message) { return Make(400, "BadRequest", message); }

ApiError NotFoundPath() {
  return Make(404, "NotFound", "the server could not find the requested resource");
}

ApiError MethodNotAllowed(const std::string& message) {
  return Make(405, "MethodNotAllowed", message);
}

ApiError UnsupportedMediaType(const std::string& message) {
  return Make(415, "UnsupportedMediaType", message);
}

ApiError Invalid(const ResourceType& resource, const std::string& name, const std::string& field,
                 const std::string& message) {
  return FromViolations({FieldError{field, message}}, resource, name);
}

}  // namespace kaito::shim
