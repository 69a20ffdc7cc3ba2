// Collects validation problems, each with the field path it concerns, so that a reply
// lists every problem at once, as Kubernetes' field.ErrorList does.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kaito {

struct FieldError {
  std::string path;     // e.g. "resource.labelSelector.matchLabels"
  std::string message;  // e.g. "Required value"
};

class FieldErrors {
 public:
  void Add(std::string path, std::string message) {
    errors_.push_back({std::move(path), std::move(message)});
  }
  bool empty() const { return errors_.empty(); }
  const std::vector<FieldError>& errors() const { return errors_; }

  // INVALID_ARGUMENT listing every problem as "path: message", joined by "; ", with
  // `subject` (e.g. `Workspace "x"`) in front; OK when there is none.
  absl::Status ToStatus(const std::string& subject) const;

 private:
  std::vector<FieldError> errors_;
};

}  // namespace kaito
