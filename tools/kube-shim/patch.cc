#include "tools/kube-shim/patch.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;

// Removes strategic-merge-patch directives ($patch, $retainKeys, $setElementOrder/...,
// $deleteFromPrimitiveList/...) at every level.
void StripDirectives(json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end();) {
      if (absl::StartsWith(it.key(), "$")) {
        it = j.erase(it);
      } else {
        StripDirectives(it.value());
        ++it;
      }
    }
  } else if (j.is_array()) {
    for (auto& item : j) StripDirectives(item);
  }
}

}  // namespace

PatchType PatchTypeOf(const std::string& content_type) {
  std::string type = absl::AsciiStrToLower(content_type.substr(0, content_type.find(';')));
  absl::StripAsciiWhitespace(&type);
  if (type == "application/merge-patch+json") return PatchType::kMerge;
  if (type == "application/json-patch+json") return PatchType::kJson;
  if (type == "application/strategic-merge-patch+json") return PatchType::kStrategic;
  if (type == "application/apply-patch+yaml") return PatchType::kApply;
  return PatchType::kUnsupported;
}

absl::StatusOr<json> ApplyPatch(PatchType type, const json& current, const std::string& body) {
  json patch = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded()) return absl::InvalidArgumentError("the patch is not valid JSON");
  json result = current;
  switch (type) {
    case PatchType::kStrategic:
      if (!patch.is_object()) {
        return absl::InvalidArgumentError("a strategic merge patch must be a JSON object");
      }
      StripDirectives(patch);
      result.merge_patch(patch);
      return result;
    case PatchType::kMerge:
      result.merge_patch(patch);
      return result;
    case PatchType::kJson:
      if (!patch.is_array()) {
        return absl::InvalidArgumentError("a JSON patch must be a JSON array of operations");
      }
      try {
        return current.patch(patch);
      } catch (const json::exception& e) {
        return absl::InvalidArgumentError(std::string("the JSON patch cannot be applied: ") +
                                          e.what());
      }
    default:
      return absl::InvalidArgumentError("unsupported patch type");
  }
}

}  // namespace kaito::shim
