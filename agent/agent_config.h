// Parsing of the kaito-agent flags that carry structure, kept out of main() so that tests
// cover them.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kaito/v1/node.pb.h"

namespace kaito::agent {

// "k=v,k2=v2" (Kubernetes label keys and values). Empty is no label. INVALID_ARGUMENT names
// the item that is wrong.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(const std::string& text);

// "key=value:Effect,key2:Effect" with Effect NoSchedule, PreferNoSchedule or NoExecute
// (kubelet's --register-with-taints). INVALID_ARGUMENT names the item.
absl::StatusOr<std::vector<v1::Taint>> ParseTaints(const std::string& text);

// A non-negative duration such as "500ms", "3s", "1m30s" (absl::ParseDuration). `flag` names
// the flag in the error.
absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& text);

}  // namespace kaito::agent
