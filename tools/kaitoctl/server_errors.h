// How kaitoctl reports a failed call, as kubectl does: what the server said is
// `Error from server (Reason): message`, with the Kubernetes reason of its gRPC code; what
// went wrong on this side (no connection, no answer within --request-timeout, a cancelled
// call) is `error: message`. Pure, so that the mapping is unit-tested.
#pragma once

#include <grpcpp/support/status.h>

#include <string>

#include "absl/time/time.h"

namespace kaito::ctl {

// The Kubernetes `StatusReason` for a gRPC code: NOT_FOUND NotFound, ALREADY_EXISTS
// AlreadyExists, ABORTED Conflict, INVALID_ARGUMENT Invalid, FAILED_PRECONDITION Conflict (the
// object's state must change first, as Kubernetes' 409 for a failed precondition),
// PERMISSION_DENIED Forbidden, UNAUTHENTICATED Unauthorized, RESOURCE_EXHAUSTED TooManyRequests,
// UNAVAILABLE ServiceUnavailable, DEADLINE_EXCEEDED Timeout, OUT_OF_RANGE Expired (a watch
// resumed from history no longer kept, Kubernetes' 410), UNIMPLEMENTED MethodNotAllowed, and
// InternalError for the rest.
const char* KubernetesReason(grpc::StatusCode code);

// What this side knew about a failed call.
struct CallFacts {
  // The call's own deadline had passed when it failed.
  bool deadline_passed = false;
  // The channel had a connection to the server when the call failed.
  bool connected = true;
  std::string server;  // HOST:PORT
  absl::Duration timeout = absl::InfiniteDuration();
};

// The one line (no newline) that reports `status`; `context` (e.g. "workspace/phi"), when
// not empty, goes before the message.
std::string FailureLine(const grpc::Status& status, const CallFacts& facts,
                        const std::string& context = "");

}  // namespace kaito::ctl
