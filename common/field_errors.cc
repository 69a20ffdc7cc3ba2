#include "common/field_errors.h"

#include "common/status_details.h"

namespace kaito {

std::string Abbreviate(absl::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut)) + "...(" + std::to_string(s.size()) + " bytes)";
}

absl::Status FieldErrors::ToStatus(const std::string& subject) const {
  if (errors_.empty()) return absl::OkStatus();
  std::string msg = subject + " is invalid: ";
  for (size_t i = 0; i < errors_.size(); ++i) {
    if (i > 0) msg += "; ";
    msg += errors_[i].path.empty() ? errors_[i].message
                                   : errors_[i].path + ": " + errors_[i].message;
  }
  absl::Status status = absl::InvalidArgumentError(msg);
  status.SetPayload(kBadRequestTypeUrl, BadRequestPayload(errors_));
  return status;
}

}  // namespace kaito
