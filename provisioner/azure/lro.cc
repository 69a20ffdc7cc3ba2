#include "provisioner/azure/lro.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "provisioner/azure/arm_json.h"

namespace kaito::provisioner::azure {
namespace {

std::optional<std::string> BodyProvisioningState(const nlohmann::json& body) {
  std::string state = ResourceProvisioningState(body);
  if (state.empty()) return std::nullopt;
  return state;
}

// A 2xx poll of a Location or of the resource: its provisioningState when it has one, else
// 202 = in progress and any other 2xx = done.
void ReadResourceState(int status, const nlohmann::json& body, Operation* op) {
  const std::optional<std::string> state = BodyProvisioningState(body);
  if (state) {
    op->state = ProvisioningState(*state);
  } else {
    op->state = status == 202 ? OperationState::kInProgress : OperationState::kSucceeded;
  }
  if (op->state == OperationState::kFailed) {
    op->error = ArmError{status, "ProvisioningFailed",
                         "the operation ended with provisioningState " + state.value_or("Failed")};
  }
}

bool IsKeepPolling(int status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 ||
         status == 504;
}

}  // namespace

std::string ResourceProvisioningState(const nlohmann::json& resource) {
  return JsonString(JsonMember(resource, "properties"), "provisioningState");
}

OperationState ProvisioningState(const std::string& state) {
  const std::string lower = absl::AsciiStrToLower(state);
  if (lower == "succeeded" || lower == "completed") return OperationState::kSucceeded;
  if (lower == "failed" || lower == "canceled" || lower == "cancelled") {
    return OperationState::kFailed;
  }
  return OperationState::kInProgress;
}

Operation StartOperation(const std::string& method, const std::string& resource_url,
                         const http::Response& response) {
  Operation op;
  op.method = method;
  op.resource_url = resource_url;
  if (std::string url = response.Header("azure-asyncoperation"); !url.empty()) {
    op.kind = PollerKind::kAsyncOperation;
    op.poll_url = url;
  } else if (std::string url = response.Header("operation-location"); !url.empty()) {
    op.kind = PollerKind::kAsyncOperation;
    op.poll_url = url;
  } else if (std::string url = response.Header("location"); !url.empty()) {
    op.kind = PollerKind::kLocation;
    op.poll_url = url;
  } else {
    op.kind = PollerKind::kBody;
    op.poll_url = resource_url;
  }
  const nlohmann::json body = ParseJson(response.body);
  if (std::optional<std::string> state = BodyProvisioningState(body)) {
    op.state = ProvisioningState(*state);
  } else if (op.kind == PollerKind::kBody) {
    // Nothing to poll and nothing that says "in progress": done (a 204 DELETE, a 200 PUT).
    op.state = response.status == 202 ? OperationState::kInProgress : OperationState::kSucceeded;
  }
  if (op.state == OperationState::kFailed) {
    op.error.http_status = response.status;
    op.error.code = "ProvisioningFailed";
    op.error.message = "the resource's provisioningState is " + BodyProvisioningState(body).value();
  }
  return op;
}

void ReadPollResponse(const http::Response& response, Operation* op) {
  const int status = response.status;
  const nlohmann::json body = ParseJson(response.body);
  switch (op->kind) {
    case PollerKind::kAsyncOperation: {
      if (status != 200 && status != 201 && status != 202 && status != 204) {
        if (IsKeepPolling(status)) return;
        op->state = OperationState::kFailed;
        op->error = ParseArmError(response);
        return;
      }
      if (!JsonMember(body, "status").is_string()) {
        op->state = OperationState::kFailed;
        op->error.http_status = status;
        op->error.code = "InvalidOperationStatus";
        op->error.message = "the operation status did not contain a status";
        return;
      }
      const std::string status_text = JsonString(body, "status");
      op->state = ProvisioningState(status_text);
      if (op->state == OperationState::kFailed) {
        const nlohmann::json& error = JsonMember(body, "error");
        op->error = !error.is_null()
                        ? ParseArmErrorObject(error, status)
                        : ArmError{status, "Canceled", "the operation ended " + status_text};
        if (op->error.code.empty()) op->error.code = status_text;
      }
      return;
    }
    case PollerKind::kLocation: {
      if (std::string moved = response.Header("location"); !moved.empty()) op->poll_url = moved;
      if (status >= 200 && status < 300) return ReadResourceState(status, body, op);
      if (IsKeepPolling(status)) return;
      op->state = OperationState::kFailed;
      op->error = ParseArmError(response);
      return;
    }
    case PollerKind::kBody: {
      if (status == 404 && op->method == "DELETE") {
        op->state = OperationState::kSucceeded;
        return;
      }
      if (status >= 200 && status < 300) return ReadResourceState(status, body, op);
      if (IsKeepPolling(status)) return;
      op->state = OperationState::kFailed;
      op->error = ParseArmError(response);
      return;
    }
  }
}

std::optional<absl::Duration> RetryAfter(const http::Response& response, absl::Time now) {
  for (const char* header : {"retry-after-ms", "x-ms-retry-after-ms"}) {
    int64_t ms = 0;
    if (std::string value = response.Header(header);
        !value.empty() && absl::SimpleAtoi(value, &ms) && ms >= 0) {
      return absl::Milliseconds(ms);
    }
  }
  const std::string value = response.Header("retry-after");
  if (value.empty()) return std::nullopt;
  int64_t seconds = 0;
  if (absl::SimpleAtoi(value, &seconds)) {
    if (seconds < 0) return std::nullopt;
    return absl::Seconds(seconds);
  }
  // An HTTP date (RFC 1123 and the older forms), read by libcurl.
  const time_t when = curl_getdate(value.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  return std::max(absl::ZeroDuration(), absl::FromTimeT(when) - now);
}

}  // namespace kaito::provisioner::azure
