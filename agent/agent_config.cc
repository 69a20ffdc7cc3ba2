#include "agent/agent_config.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/k8s_names.h"

namespace kaito::agent {

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(const std::string& text) {
  std::map<std::string, std::string> labels;
  if (absl::StripAsciiWhitespace(text).empty()) return labels;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    const std::string item(absl::StripAsciiWhitespace(raw));
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--labels item \"", item, "\": want KEY=VALUE"));
    }
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    if (std::string why = CheckQualifiedName(key); !why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--labels item \"", item, "\": key: ", why));
    }
    if (std::string why = CheckLabelValue(value); !why.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--labels item \"", item, "\": value: ", why));
    }
    if (labels.count(key) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--labels item \"", item, "\": key ", key, " given twice"));
    }
    labels[key] = value;
  }
  return labels;
}

absl::StatusOr<std::vector<v1::Taint>> ParseTaints(const std::string& text) {
  std::vector<v1::Taint> taints;
  if (absl::StripAsciiWhitespace(text).empty()) return taints;
  for (absl::string_view raw : absl::StrSplit(text, ',')) {
    const std::string item(absl::StripAsciiWhitespace(raw));
    auto bad = [&item](const std::string& why) {
      return absl::InvalidArgumentError(
          absl::StrCat("--taints item \"", item, "\": ", why,
                       "; want KEY[=VALUE]:NoSchedule|PreferNoSchedule|NoExecute"));
    };
    const size_t colon = item.rfind(':');
    if (colon == std::string::npos) return bad("no effect");
    v1::Taint taint;
    taint.set_effect(item.substr(colon + 1));
    if (taint.effect() != "NoSchedule" && taint.effect() != "PreferNoSchedule" &&
        taint.effect() != "NoExecute") {
      return bad("unknown effect \"" + taint.effect() + "\"");
    }
    const std::string kv = item.substr(0, colon);
    const size_t eq = kv.find('=');
    taint.set_key(kv.substr(0, eq));
    if (eq != std::string::npos) taint.set_value(kv.substr(eq + 1));
    if (std::string why = CheckQualifiedName(taint.key()); !why.empty()) {
      return bad("key: " + why);
    }
    if (std::string why = CheckLabelValue(taint.value()); !why.empty()) {
      return bad("value: " + why);
    }
    taints.push_back(std::move(taint));
  }
  return taints;
}

absl::StatusOr<absl::Duration> ParseFlagDuration(const std::string& flag, const std::string& text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d) || d < absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " \"", text, "\": want a duration such as 500ms, 3s or 1m30s"));
  }
  return d;
}

}  // namespace kaito::agent
