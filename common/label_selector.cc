#include "common/label_selector.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/k8s_names.h"

namespace kaito {
namespace {

using Requirement = LabelSelectorMatcher::Requirement;
using Op = LabelSelectorMatcher::Op;

std::string Trim(absl::string_view s) { return std::string(absl::StripAsciiWhitespace(s)); }

// Splits on commas that are not inside parentheses.
absl::StatusOr<std::vector<std::string>> SplitTopLevel(const std::string& s) {
  std::vector<std::string> parts;
  int depth = 0;
  std::string current;
  for (char c : s) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth < 0 || depth > 1) return absl::InvalidArgumentError("unbalanced parentheses");
    if (c == ',' && depth == 0) {
      parts.push_back(Trim(current));
      current.clear();
    } else {
      current += c;
    }
  }
  if (depth != 0) return absl::InvalidArgumentError("unbalanced parentheses");
  parts.push_back(Trim(current));
  return parts;
}

absl::Status CheckKeyAndValues(const Requirement& r) {
  if (std::string err = CheckQualifiedName(r.key); !err.empty()) {
    return absl::InvalidArgumentError("key " + err);
  }
  for (const auto& v : r.values) {
    if (std::string err = CheckLabelValue(v); !err.empty()) {
      return absl::InvalidArgumentError("value " + err);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Requirement> ParseRequirement(const std::string& text) {
  Requirement r;
  if (absl::StartsWith(text, "!")) {
    r.key = Trim(text.substr(1));
    r.op = Op::kDoesNotExist;
    return r;
  }
  // Set-based: "key in (a,b)" / "key notin (a,b)".
  size_t paren = text.find('(');
  if (paren != std::string::npos) {
    if (text.back() != ')') return absl::InvalidArgumentError("expected ')' at the end");
    std::vector<std::string> head = absl::StrSplit(text.substr(0, paren), ' ', absl::SkipEmpty());
    if (head.size() != 2) return absl::InvalidArgumentError("expected 'KEY in|notin (VALUES)'");
    r.key = head[0];
    std::string op = absl::AsciiStrToLower(head[1]);
    if (op == "in") {
      r.op = Op::kIn;
    } else if (op == "notin") {
      r.op = Op::kNotIn;
    } else {
      return absl::InvalidArgumentError("unknown operator \"" + head[1] + "\"");
    }
    std::string inner = text.substr(paren + 1, text.size() - paren - 2);
    for (absl::string_view v : absl::StrSplit(inner, ',')) r.values.push_back(Trim(v));
    // As Kubernetes: "x in ()" and "x notin ()" have no values (not the one value "").
    if (r.values.size() == 1 && r.values[0].empty()) {
      return absl::InvalidArgumentError("'" + op + "' needs at least one value");
    }
    return r;
  }
  for (const char* op : {"!=", "==", "="}) {
    size_t pos = text.find(op);
    if (pos == std::string::npos) continue;
    r.key = Trim(text.substr(0, pos));
    r.values.push_back(Trim(text.substr(pos + std::string(op).size())));
    r.op = std::string(op) == "!=" ? Op::kNotIn : Op::kIn;
    return r;
  }
  r.key = text;
  r.op = Op::kExists;
  return r;
}

}  // namespace

absl::StatusOr<LabelSelectorMatcher> LabelSelectorMatcher::Parse(const std::string& selector) {
  LabelSelectorMatcher m;
  if (Trim(selector).empty()) return m;
  if (selector.size() > 4096) return absl::InvalidArgumentError("label selector is too long");
  auto parts = SplitTopLevel(selector);
  if (!parts.ok()) {
    return absl::InvalidArgumentError("label selector \"" + selector +
                                      "\": " + std::string(parts.status().message()));
  }
  for (const std::string& part : *parts) {
    if (part.empty()) {
      return absl::InvalidArgumentError("label selector \"" + selector +
                                        "\": empty requirement");
    }
    auto r = ParseRequirement(part);
    absl::Status status = r.ok() ? CheckKeyAndValues(*r) : r.status();
    if (!status.ok()) {
      return absl::InvalidArgumentError("label selector \"" + selector + "\": requirement \"" +
                                        part + "\": " + std::string(status.message()));
    }
    m.requirements_.push_back(std::move(*r));
  }
  return m;
}

LabelSelectorMatcher LabelSelectorMatcher::FromProto(const v1::LabelSelector& selector,
                                                     const std::string& path,
                                                     FieldErrors& errors) {
  LabelSelectorMatcher m;
  std::vector<std::string> keys;
  for (const auto& [k, v] : selector.match_labels()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());  // Deterministic error order.
  for (const std::string& k : keys) {
    const std::string& v = selector.match_labels().at(k);
    if (std::string err = CheckQualifiedName(k); !err.empty()) {
      errors.Add(path + ".matchLabels", err);
    }
    if (std::string err = CheckLabelValue(v); !err.empty()) {
      errors.Add(path + ".matchLabels[" + k + "]", err);
    }
    m.requirements_.push_back({k, Op::kIn, {v}});
  }
  for (int i = 0; i < selector.match_expressions_size(); ++i) {
    const auto& e = selector.match_expressions(i);
    const std::string p = path + ".matchExpressions[" + std::to_string(i) + "]";
    if (std::string err = CheckQualifiedName(e.key()); !err.empty()) errors.Add(p + ".key", err);
    Requirement r{e.key(), Op::kIn, {e.values().begin(), e.values().end()}};
    if (e.operator_() == "In" || e.operator_() == "NotIn") {
      r.op = e.operator_() == "In" ? Op::kIn : Op::kNotIn;
      if (e.values().empty()) {
        errors.Add(p + ".values", "Required value: must be specified when `operator` is 'In' or 'NotIn'");
      }
    } else if (e.operator_() == "Exists" || e.operator_() == "DoesNotExist") {
      r.op = e.operator_() == "Exists" ? Op::kExists : Op::kDoesNotExist;
      if (!e.values().empty()) {
        errors.Add(p + ".values",
                   "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
      }
    } else {
      errors.Add(p + ".operator", "Unsupported value: \"" + e.operator_() +
                                      "\": supported values: \"In\", \"NotIn\", \"Exists\", "
                                      "\"DoesNotExist\"");
    }
    for (const auto& v : e.values()) {
      if (std::string err = CheckLabelValue(v); !err.empty()) errors.Add(p + ".values", err);
    }
    m.requirements_.push_back(std::move(r));
  }
  return m;
}

bool LabelSelectorMatcher::Matches(
    const google::protobuf::Map<std::string, std::string>& labels) const {
  for (const Requirement& r : requirements_) {
    auto it = labels.find(r.key);
    const bool has = it != labels.end();
    switch (r.op) {
      case Op::kExists:
        if (!has) return false;
        break;
      case Op::kDoesNotExist:
        if (has) return false;
        break;
      case Op::kIn:
        if (!has || std::find(r.values.begin(), r.values.end(), it->second) == r.values.end()) {
          return false;
        }
        break;
      case Op::kNotIn:
        if (has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end()) {
          return false;
        }
        break;
    }
  }
  return true;
}

}  // namespace kaito
