#include "common/field_errors.h"

namespace kaito {

absl::Status FieldErrors::ToStatus(const std::string& subject) const {
  if (errors_.empty()) return absl::OkStatus();
  std::string msg = subject + " is invalid: ";
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (i > 0) msg += "; ";
    msg += errors_[i].path.empty() ? errors_[i].message
                                   : errors_[i].path + ": " + errors_[i].message;
  }
  return absl::InvalidArgumentError(msg);
}

}  // namespace kaito
