#include "tools/kaitoctl/wait_condition.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kaito::ctl {
namespace {

absl::StatusOr<WaitCondition> ParseCondition(const std::string& rest) {
  WaitCondition c;
  c.kind = WaitCondition::Kind::kCondition;
  const size_t eq = rest.find('=');
  c.condition_type = rest.substr(0, eq);
  if (eq != std::string::npos) c.condition_status = rest.substr(eq + 1);
  if (c.condition_type.empty() || c.condition_status.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--for: condition=TYPE[=STATUS] expected, got \"condition=", rest, "\""));
  }
  return c;
}

// `PATH[=VALUE]`: the value starts after the `}` that closes a braced path, or after the
// last `=` of an unbraced one that is not part of a comparison.
absl::StatusOr<WaitCondition> ParseJsonPathCondition(const std::string& rest) {
  std::string path = rest;
  std::optional<std::string> value;
  const size_t split = absl::StartsWith(rest, "{") ? rest.rfind('}') + 1 : rest.rfind('=');
  if (split != std::string::npos && split < rest.size() && rest[split] == '=' &&
      (split == 0 || (rest[split - 1] != '=' && rest[split - 1] != '!'))) {
    path = rest.substr(0, split);
    value = rest.substr(split + 1);
  }
  absl::StatusOr<JsonPath> parsed = JsonPath::ParseExpression(path);
  if (!parsed.ok())
    return absl::InvalidArgumentError(absl::StrCat("--for: ", parsed.status().message()));
  WaitCondition c;
  c.kind = WaitCondition::Kind::kJsonPath;
  c.path = std::move(*parsed);
  c.value = std::move(value);
  return c;
}

int64_t Integer(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

bool HasCondition(const WaitCondition& c, const Json& object) {
  const Json empty = Json::object();
  const Json& meta = object.contains("metadata") ? object["metadata"] : empty;
  const int64_t generation = Integer(meta, "generation");
  auto status = object.find("status");
  if (status == object.end() || !status->is_object()) return false;
  auto conditions = status->find("conditions");
  if (conditions == status->end() || !conditions->is_array()) return false;
  for (const Json& cond : *conditions) {
    if (!cond.is_object() || !cond.contains("type") || !cond.contains("status")) continue;
    if (!absl::EqualsIgnoreCase(JsonValueText(cond["type"]), c.condition_type)) continue;
    const int64_t observed = Integer(cond, "observedGeneration");
    if (observed != 0 && generation != 0 && observed < generation) return false;
    return absl::EqualsIgnoreCase(JsonValueText(cond["status"]), c.condition_status);
  }
  return false;
}

}  // namespace

absl::StatusOr<WaitCondition> ParseWaitCondition(const std::string& spec) {
  if (absl::EqualsIgnoreCase(spec, "delete")) return WaitCondition{};
  if (absl::StartsWithIgnoreCase(spec, "condition=")) return ParseCondition(spec.substr(10));
  if (absl::StartsWithIgnoreCase(spec, "jsonpath=")) return ParseJsonPathCondition(spec.substr(9));
  if (spec.empty()) {
    return absl::InvalidArgumentError(
        "--for must be given: delete, condition=TYPE[=STATUS] or jsonpath=PATH[=VALUE]");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unrecognized condition: \"", spec,
                   "\" (delete, condition=TYPE[=STATUS] or jsonpath=PATH[=VALUE])"));
}

bool ConditionMet(const WaitCondition& condition, const Json& object) {
  switch (condition.kind) {
    case WaitCondition::Kind::kDelete:
      return false;
    case WaitCondition::Kind::kCondition:
      return HasCondition(condition, object);
    case WaitCondition::Kind::kJsonPath: {
      const std::vector<Json> values = condition.path->Select(object);
      if (!condition.value) return !values.empty();
      for (const Json& v : values) {
        if (JsonValueText(v) == *condition.value) return true;
      }
      return false;
    }
  }
  return false;
}

}  // namespace kaito::ctl
