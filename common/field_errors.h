// Collects validation problems, each with the field path it concerns, so that a reply
// lists every problem at once, as Kubernetes' field.ErrorList does.
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/status/status.h"

namespace kaito {

// Bounds on what an error echoes of the input: a value quoted in a message, one field
// error's message, and a whole reply's message (gRPC carries it in a header, which has a
// size limit of its own; `ToGrpcStatus` counts it percent-encoded, as sent, and an error
// with details has less: common/status_details.h).
inline constexpr size_t kMaxEchoedValue = 128;
inline constexpr size_t kMaxFieldErrorMessage = 1024;
inline constexpr size_t kMaxErrorMessage = 4096;

// `s` when it has at most `max` bytes; else its first bytes (never cutting a UTF-8
// sequence) and "...(N bytes)".
std::string Abbreviate(absl::string_view s, size_t max = kMaxEchoedValue);

struct FieldError {
  std::string path;     // e.g. "resource.labelSelector.matchLabels"
  std::string message;  // e.g. "Required value"
};

class FieldErrors {
 public:
  void Add(std::string path, std::string message) {
    errors_.push_back({Abbreviate(path, kMaxEchoedValue * 2),
                       Abbreviate(message, kMaxFieldErrorMessage)});
  }
  bool empty() const { return errors_.empty(); }
  const std::vector<FieldError>& errors() const { return errors_; }

  // INVALID_ARGUMENT listing every problem as "path: message", joined by "; ", with
  // `subject` (e.g. `Workspace "x"`) in front, and the same problems as a
  // `google.rpc.BadRequest` payload (`kBadRequestTypeUrl`, bounded: common/status_details.h)
  // that `ToGrpcStatus` sends as the call's error details; OK when there is none.
  absl::Status ToStatus(const std::string& subject) const;

 private:
  std::vector<FieldError> errors_;
};

}  // namespace kaito
