#include "provisioner/azure/arm_error.h"

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "provisioner/azure/arm_json.h"

namespace kaito::provisioner::azure {
namespace {

bool IsQuotaText(const std::string& message) {
  for (const char* marker : {"Cores quota", "exceeding approved Total Regional Cores quota",
                             "LowPriorityCores", "Submit a request for Quota increase"}) {
    if (absl::StrContains(message, marker)) return true;
  }
  return false;
}

// The classes of the codes that decide by themselves.
bool ClassifyCode(const std::string& code, const std::string& message, ErrorClass* out) {
  auto set = [out](const char* reason, bool retryable, bool unavailable) {
    out->reason = reason;
    out->retryable = retryable;
    out->offering_unavailable = unavailable;
    return true;
  };
  if (code == "QuotaExceeded" || code == "ErrCode_InsufficientVCPUQuota" ||
      code == "InsufficientVCPUQuota" || (code == "OperationNotAllowed" && IsQuotaText(message))) {
    return set("QuotaExceeded", false, true);
  }
  if (code == "SkuNotAvailable" || code == "AvailabilityZoneNotSupported") {
    return set("SkuNotAvailable", false, true);
  }
  if (code == "AllocationFailed" || code == "ZonalAllocationFailed" ||
      code == "OverconstrainedAllocationRequest" ||
      code == "OverconstrainedZonalAllocationRequest") {
    out->reason =
        code == "OverconstrainedZonalAllocationRequest" ? "OverconstrainedAllocationRequest" : code;
    out->retryable = true;
    out->offering_unavailable = true;
    return true;
  }
  if (code == "AKSOperationPreempted" || code == "AKSOperationPreemptedByDelete" ||
      code == "Canceled") {
    return set("OperationPreempted", true, false);
  }
  if (code == "VMExtensionProvisioningError" || code == "VMExtensionProvisioningTimeout") {
    return set("VMExtensionProvisioningError", true, false);
  }
  if (code == "AuthorizationFailed" || code == "LinkedAuthorizationFailed") {
    return set("AuthorizationFailed", false, false);
  }
  if (code == "InvalidAuthenticationToken" || code == "ExpiredAuthenticationToken" ||
      code == "AuthenticationFailed") {
    return set("AuthenticationFailed", false, false);
  }
  if (code == "InvalidParameter" || code == "BadRequest" || code == "InvalidApiVersionParameter" ||
      code == "MissingApiVersionParameter" || code == "PropertyChangeNotAllowed") {
    return set("InvalidParameter", false, false);
  }
  if (code == "SubscriptionRequestsThrottled" || code == "TooManyRequests") {
    return set("Throttled", true, false);
  }
  if (code == "OperationNotAllowed") return set("OperationNotAllowed", true, false);
  return false;
}

}  // namespace

std::string ArmError::Describe() const {
  std::string text = code.empty() ? message : absl::StrCat(code, ": ", message);
  for (const ArmError& detail : details) {
    if (detail.code.empty() && detail.message.empty()) continue;
    if (detail.message == message && detail.code == code) continue;
    absl::StrAppend(&text, " (", detail.Describe(), ")");
  }
  return text;
}

ArmError ParseArmErrorObject(const nlohmann::json& error, int http_status) {
  ArmError out;
  out.http_status = http_status;
  out.code = JsonString(error, "code");
  out.message = JsonString(error, "message");
  out.target = JsonString(error, "target");
  if (error.is_object()) {
    auto details = error.find("details");
    if (details != error.end() && details->is_array()) {
      for (const nlohmann::json& detail : *details) {
        out.details.push_back(ParseArmErrorObject(detail, http_status));
      }
    }
  }
  return out;
}

ArmError ParseArmError(const http::Response& response) {
  const nlohmann::json body = ParseJson(response.body);
  ArmError out;
  if (const nlohmann::json& error = JsonMember(body, "error"); error.is_object()) {
    out = ParseArmErrorObject(error, response.status);
  } else if (const nlohmann::json& odata = JsonMember(body, "odata.error"); !odata.is_null()) {
    out = ParseArmErrorObject(odata, response.status);
    if (out.message.empty()) out.message = JsonString(JsonMember(odata, "message"), "value");
  }
  out.http_status = response.status;
  if (std::string header = response.Header("x-ms-error-code"); !header.empty()) {
    out.code = header;
  }
  if (out.code.empty()) out.code = absl::StrCat("HTTP", response.status);
  if (out.message.empty()) {
    // Not ARM's JSON (a gateway's HTML page, an empty body): a short excerpt.
    std::string excerpt = response.body.substr(0, 200);
    for (char& c : excerpt) {
      if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    out.message = excerpt.empty() ? absl::StrCat("HTTP status ", response.status)
                                  : absl::StrCat("HTTP status ", response.status, ": ", excerpt);
  }
  return out;
}

ErrorClass ClassifyArmError(const ArmError& error) {
  ErrorClass out;
  // A wrapper (ResourceOperationFailure, DeploymentFailed, ...) is classified by the first
  // detail that has a class of its own; the code itself decides otherwise.
  if (!ClassifyCode(error.code, error.message, &out) || error.code == "ResourceOperationFailure") {
    for (const ArmError& detail : error.details) {
      ErrorClass nested = ClassifyArmError(detail);
      if (nested.reason != "CloudError") return nested;
    }
    if (!out.reason.empty()) return out;
    out.reason = "CloudError";
    // Server-side failures may pass; a client error will not.
    out.retryable = error.http_status == 0 || error.http_status >= 500 ||
                    error.http_status == 408 || error.http_status == 429;
    out.offering_unavailable = false;
  }
  return out;
}

bool IsOperationInProgress(const ArmError& error) {
  return error.http_status == 409 && error.code == "OperationNotAllowed" &&
         !IsQuotaText(error.message);
}

}  // namespace kaito::provisioner::azure
