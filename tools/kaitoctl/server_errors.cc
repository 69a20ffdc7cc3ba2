#include "tools/kaitoctl/server_errors.h"

#include "absl/strings/str_cat.h"

namespace kaito::ctl {

const char* KubernetesReason(grpc::StatusCode code) {
  switch (code) {
    case grpc::NOT_FOUND:
      return "NotFound";
    case grpc::ALREADY_EXISTS:
      return "AlreadyExists";
    case grpc::ABORTED:
    case grpc::FAILED_PRECONDITION:
      return "Conflict";
    case grpc::INVALID_ARGUMENT:
      return "Invalid";
    case grpc::PERMISSION_DENIED:
      return "Forbidden";
    case grpc::UNAUTHENTICATED:
      return "Unauthorized";
    case grpc::RESOURCE_EXHAUSTED:
      return "TooManyRequests";
    case grpc::UNAVAILABLE:
      return "ServiceUnavailable";
    case grpc::DEADLINE_EXCEEDED:
      return "Timeout";
    case grpc::OUT_OF_RANGE:
      return "Expired";
    case grpc::UNIMPLEMENTED:
      return "MethodNotAllowed";
    default:
      return "InternalError";
  }
}

std::string FailureLine(const grpc::Status& status, const CallFacts& facts,
                        const std::string& context) {
  const std::string prefix = context.empty() ? "" : context + ": ";
  const grpc::StatusCode code = status.error_code();
  if (code == grpc::DEADLINE_EXCEEDED && facts.deadline_passed) {
    return absl::StrCat("error: ", prefix, "the server at ", facts.server,
                        " did not answer within ", absl::FormatDuration(facts.timeout),
                        " (--request-timeout)");
  }
  if (code == grpc::UNAVAILABLE && !facts.connected) {
    return absl::StrCat("error: ", prefix, "cannot connect to the server at ", facts.server, ": ",
                        status.error_message());
  }
  if (code == grpc::CANCELLED) {
    return absl::StrCat("error: ", prefix, "the call was cancelled");
  }
  std::string message = status.error_message();
  if (message.empty()) {
    message = code == grpc::UNIMPLEMENTED
                  ? "the server does not serve this call (an older kaito-server?)"
                  : "no message";
  }
  return absl::StrCat("Error from server (", KubernetesReason(code), "): ", prefix, message);
}

}  // namespace kaito::ctl
