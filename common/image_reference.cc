#include "common/image_reference.h"

#include <regex>
#include <vector>

#include "absl/strings/ascii.h"

namespace kaito {
namespace {

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// A repository path component, `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`, checked in one
// pass: a regex engine that backtracks takes exponential time on it.
bool IsPathComponent(const std::string& c) {
  if (c.empty() || c.size() > 255 || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) {
    return false;
  }
  size_t i = 0;
  while (i < c.size()) {
    if (IsLowerAlnum(c[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < c.size() && !IsLowerAlnum(c[j])) ++j;
    const std::string sep = c.substr(i, j - i);
    const bool dashes = sep.find_first_not_of('-') == std::string::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// A registry host: DNS-style labels of [A-Za-z0-9-] (not starting or ending with '-')
// separated by dots, with an optional :port.
bool IsDomain(const std::string& d) {
  if (d.empty() || d.size() > 255) return false;
  std::string host = d;
  if (size_t colon = d.rfind(':'); colon != std::string::npos) {
    const std::string port = d.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    host = d.substr(0, colon);
  }
  size_t start = 0;
  while (true) {
    size_t dot = host.find('.', start);
    const std::string label = host.substr(start, dot == std::string::npos ? dot : dot - start);
    if (label.empty() || label.front() == '-' || label.back() == '-') return false;
    for (char ch : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(ch)) && ch != '-') return false;
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

std::string CheckImageReference(const std::string& image) {
  if (image.empty()) return "image reference is empty";
  if (image.size() > 512) return "image reference is longer than 512 characters";
  std::string rest = image;
  if (size_t at = rest.find('@'); at != std::string::npos) {
    static const std::regex digest("^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$");
    if (!std::regex_match(rest.substr(at + 1), digest)) {
      return "invalid reference format: bad digest in \"" + image + "\"";
    }
    rest = rest.substr(0, at);
  }
  size_t last_slash = rest.rfind('/');
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && (last_slash == std::string::npos || colon > last_slash)) {
    static const std::regex tag("^[\\w][\\w.-]{0,127}$");
    if (!std::regex_match(rest.substr(colon + 1), tag)) {
      return "invalid reference format: bad tag in \"" + image + "\"";
    }
    rest = rest.substr(0, colon);
  }
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = rest.find('/', start);
    parts.push_back(rest.substr(start, slash == std::string::npos ? slash : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  size_t first_path = 0;
  if (parts.size() > 1 && (parts[0].find_first_of(".:") != std::string::npos ||
                           parts[0] == "localhost")) {
    if (!IsDomain(parts[0])) {
      return "invalid reference format: bad registry \"" + parts[0] + "\" in \"" + image + "\"";
    }
    first_path = 1;
  }
  for (size_t i = first_path; i < parts.size(); ++i) {
    if (!IsPathComponent(parts[i])) {
      return "invalid reference format: repository name must be lowercase (\"" + image + "\")";
    }
  }
  return "";
}

}  // namespace kaito
