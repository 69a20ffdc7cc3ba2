// Azure Resource Manager errors, read once at the edge: the error of a failed response
// or a failed long-running operation, and its class as the node claim reports it.
#pragma once

#include <string>
#include <vector>

#include "common/http/http_client.h"
#include "nlohmann/json_fwd.hpp"

namespace kaito::provisioner::azure {

struct ArmError {
  int http_status = 0;
  std::string code;
  std::string message;
  std::string target;
  std::vector<ArmError> details;

  // "CODE: message" plus the details' "CODE: message", for users.
  std::string Describe() const;
};

// The error of a non-2xx response: the code from `x-ms-error-code`, else the body's
// `error.code`, else `odata.error.code`; the message from the body (a body that is not
// ARM's JSON, such as an HTML error page, gives the HTTP status as code and a short excerpt).
ArmError ParseArmError(const http::Response& response);
// The `error` object of an ARM body or a failed operation's status body.
ArmError ParseArmErrorObject(const nlohmann::json& error, int http_status);

// How a claim reports a cloud failure.
struct ErrorClass {
  // QuotaExceeded, SkuNotAvailable, AllocationFailed, ZonalAllocationFailed,
  // OverconstrainedAllocationRequest, OperationNotAllowed, AuthorizationFailed,
  // AuthenticationFailed, InvalidParameter, VMExtensionProvisioningError, Throttled,
  // OperationPreempted, CloudError (anything else).
  std::string reason;
  // Another attempt of the same create may succeed.
  bool retryable = false;
  // The offering (instance type, capacity type, zone) has no capacity or quota: a
  // different offering may succeed where this one will not.
  bool offering_unavailable = false;
};

// Classifies by code (the nested details of ResourceOperationFailure included). The one
// place that reads message text is Azure's own: `OperationNotAllowed` is also the code of
// a compute quota refusal, told apart only by its text, as Azure's SDK extensions do.
ErrorClass ClassifyArmError(const ArmError& error);

// True for the 409 `OperationNotAllowed` that means another operation on the pool is in
// progress (the create of a previous attempt, or of a provisioner that restarted).
bool IsOperationInProgress(const ArmError& error);

}  // namespace kaito::provisioner::azure
