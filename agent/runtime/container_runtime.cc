#include "agent/runtime/container_runtime.h"

namespace kaito::agent {

const char* ContainerStateName(ContainerState state) {
  switch (state) {
    case ContainerState::kCreated:
      return "created";
    case ContainerState::kRunning:
      return "running";
    case ContainerState::kExited:
      return "exited";
  }
  return "unknown";
}

const char* ContainerHealthName(ContainerHealth health) {
  switch (health) {
    case ContainerHealth::kNone:
      return "none";
    case ContainerHealth::kStarting:
      return "starting";
    case ContainerHealth::kHealthy:
      return "healthy";
    case ContainerHealth::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

bool IsTransientRuntimeError(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kAborted:
      return true;
    default:
      return false;
  }
}

}  // namespace kaito::agent
