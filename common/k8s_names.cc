#include "common/k8s_names.h"

#include <string>

namespace kaito {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

std::string Quote(std::string_view v) {
  if (v.size() > 80) return "\"" + std::string(v.substr(0, 77)) + "...\"";
  return "\"" + std::string(v) + "\"";
}

// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
bool IsLabelShape(std::string_view v) {
  if (v.empty() || !IsLowerAlnum(v.front()) || !IsLowerAlnum(v.back())) return false;
  for (char c : v) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
bool IsQualifiedNamePart(std::string_view v) {
  if (v.empty() || !IsAlnum(v.front()) || !IsAlnum(v.back())) return false;
  for (char c : v) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

}  // namespace

std::string CheckDnsLabel(std::string_view value) {
  if (value.empty()) return "Required value";
  if (value.size() > 63) {
    return "Invalid value: " + Quote(value) + ": must be no more than 63 characters";
  }
  if (!IsLabelShape(value)) {
    return "Invalid value: " + Quote(value) +
           ": a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
           "or '-', and must start and end with an alphanumeric character";
  }
  return "";
}

std::string CheckDnsSubdomain(std::string_view value) {
  if (value.empty()) return "Required value";
  if (value.size() > 253) {
    return "Invalid value: " + Quote(value) + ": must be no more than 253 characters";
  }
  size_t start = 0;
  while (true) {
    size_t dot = value.find('.', start);
    std::string_view part = value.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!IsLabelShape(part)) {
      return "Invalid value: " + Quote(value) +
             ": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
             "characters, '-' or '.', and must start and end with an alphanumeric character";
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return "";
}

std::string CheckQualifiedName(std::string_view value) {
  if (value.empty()) return "Invalid value: \"\": name part must be non-empty";
  std::string_view name = value;
  size_t slash = value.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = value.substr(0, slash);
    name = value.substr(slash + 1);
    if (prefix.empty()) return "Invalid value: " + Quote(value) + ": prefix part must be non-empty";
    if (std::string err = CheckDnsSubdomain(prefix); !err.empty()) {
      return "Invalid value: " + Quote(value) + ": prefix part must be a DNS subdomain";
    }
  }
  if (name.size() > 63) {
    return "Invalid value: " + Quote(value) + ": name part must be no more than 63 characters";
  }
  if (!IsQualifiedNamePart(name)) {
    return "Invalid value: " + Quote(value) +
           ": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
           "start and end with an alphanumeric character";
  }
  return "";
}

std::string CheckLabelValue(std::string_view value) {
  if (value.empty()) return "";
  if (value.size() > 63) {
    return "Invalid value: " + Quote(value) + ": must be no more than 63 characters";
  }
  if (!IsQualifiedNamePart(value)) {
    return "Invalid value: " + Quote(value) +
           ": a valid label must be an empty string or consist of alphanumeric characters, "
           "'-', '_' or '.', and must start and end with an alphanumeric character";
  }
  return "";
}

std::string CheckConfigMapKey(std::string_view value) {
  if (value.empty()) return "Invalid value: \"\": a key must be non-empty";
  if (value.size() > 253) {
    return "Invalid value: " + Quote(value) + ": must be no more than 253 characters";
  }
  if (value == "." || value == "..") {
    return "Invalid value: " + Quote(value) + ": must not be '.' or '..'";
  }
  for (char c : value) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') {
      return "Invalid value: " + Quote(value) +
             ": a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
    }
  }
  return "";
}

}  // namespace kaito
