// The patch types of the Kubernetes API (PATCH's Content-Type), applied to an object's JSON.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace kaito::shim {

enum class PatchType {
  kMerge,      // application/merge-patch+json: RFC 7386.
  kJson,       // application/json-patch+json: RFC 6902.
  kStrategic,  // application/strategic-merge-patch+json: the core kinds only.
  kApply,      // application/apply-patch+yaml: server-side apply.
  kUnsupported,
};

PatchType PatchTypeOf(const std::string& content_type);

// `current` with `patch` (the request body) applied, for kMerge, kJson and kStrategic.
// A strategic merge patch is applied as a merge patch without its `$` directives: the
// kinds it is served for (ConfigMap, Secret) have no lists that merge by key, so the two
// agree on them. INVALID_ARGUMENT when the body is not JSON, not the patch's shape, or a
// JSON patch operation fails (a `test` that does not hold, a path that does not exist).
absl::StatusOr<nlohmann::ordered_json> ApplyPatch(PatchType type,
                                                  const nlohmann::ordered_json& current,
                                                  const std::string& body);

}  // namespace kaito::shim
