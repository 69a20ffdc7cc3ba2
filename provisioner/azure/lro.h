// Azure Resource Manager long-running operations, as ARM defines them and Azure's SDKs
// poll them: the poller is chosen from the first response (Azure-AsyncOperation, then
// Operation-Location, then Location, else the resource itself), each poll response is
// read into a state, and Retry-After sets the spacing. Pure functions over responses:
// the caller owns the timers, so no thread waits for an operation.
#pragma once

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "common/http/http_client.h"
#include "nlohmann/json_fwd.hpp"
#include "provisioner/azure/arm_error.h"

namespace kaito::provisioner::azure {

enum class PollerKind { kAsyncOperation, kLocation, kBody };

enum class OperationState { kInProgress, kSucceeded, kFailed };

struct Operation {
  PollerKind kind = PollerKind::kBody;
  // What the next poll GETs.
  std::string poll_url;
  // The resource, for the body poller and for the final GET after an async PUT.
  std::string resource_url;
  std::string method;
  OperationState state = OperationState::kInProgress;
  // The failure, when `state` is kFailed.
  ArmError error;
};

// The operation a PUT or DELETE response (2xx) started. A response that says it is done
// already (a 200 PUT whose body is Succeeded, a 204 DELETE) is kSucceeded at once.
Operation StartOperation(const std::string& method, const std::string& resource_url,
                         const http::Response& response);

// Reads one poll response into `op` (state, error, a moved Location). Responses that
// ARM defines as "keep polling" (408, 429, 5xx on a Location poll) leave the state as it
// was; a poll status outside 2xx on the async poller is a failure.
void ReadPollResponse(const http::Response& response, Operation* op);

// The `properties.provisioningState` of a resource (an agent pool) as ARM returns it; "" when
// it has none.
std::string ResourceProvisioningState(const nlohmann::json& resource);

// Reads a `provisioningState` (Succeeded, Failed, Canceled terminal; anything else in progress).
OperationState ProvisioningState(const std::string& state);

// The delay a response asks for: `retry-after-ms`, then `x-ms-retry-after-ms`, then
// `Retry-After` as seconds or as an HTTP date (relative to `now`). nullopt when none or
// unreadable.
std::optional<absl::Duration> RetryAfter(const http::Response& response, absl::Time now);

}  // namespace kaito::provisioner::azure
