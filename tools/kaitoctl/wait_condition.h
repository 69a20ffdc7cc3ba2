// `kaitoctl wait --for=...`: what is waited for, and whether an object meets it, as kubectl:
//   --for=delete                      the object is gone;
//   --for=condition=TYPE[=STATUS]     status.conditions has TYPE with STATUS (default True),
//                                     both compared case-insensitively, and the condition is
//                                     not older than the object's spec: a condition whose
//                                     observedGeneration is set and below metadata.generation
//                                     does not count (as kubectl's check);
//   --for=jsonpath=PATH[=VALUE]       PATH selects VALUE (or, without a value, anything).
// Pure; the command that watches lives in wait_command.cc.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "tools/kaitoctl/jsonpath.h"

namespace kaito::ctl {

struct WaitCondition {
  enum class Kind { kDelete, kCondition, kJsonPath };
  Kind kind = Kind::kDelete;
  std::string condition_type;             // kCondition.
  std::string condition_status = "True";  // kCondition.
  std::optional<JsonPath> path;           // kJsonPath.
  std::optional<std::string> value;       // kJsonPath: none means "selects anything".
};

// `--for`'s value; INVALID_ARGUMENT naming the problem otherwise.
absl::StatusOr<WaitCondition> ParseWaitCondition(const std::string& spec);

// Whether `object` (as `-o json` prints it) meets `condition`; never for kDelete, which only
// the object's absence meets.
bool ConditionMet(const WaitCondition& condition, const Json& object);

}  // namespace kaito::ctl
