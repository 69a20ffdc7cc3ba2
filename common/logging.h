// Log setup shared by every daemon: spdlog to stderr, one line per event, as text or
// JSON (`--log-format`). Never log a secret value.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kaito {

// `level`: trace|debug|info|warn|error|off. `format`: text|json.
absl::Status SetupLogging(const std::string& level, const std::string& format,
                          const std::string& component);

}  // namespace kaito
