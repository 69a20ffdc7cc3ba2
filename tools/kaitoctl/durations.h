// kubectl's duration flags (`--request-timeout`, `--timeout`): "5s", "1m", "1h30m", "250ms";
// a plain integer is seconds.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kaito::ctl {

// Parses `text` for the flag `flag` (named in the error). Negative durations are an error;
// zero is returned as zero, for the caller to read as its flag documents ("none", "once").
absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& text);

}  // namespace kaito::ctl
