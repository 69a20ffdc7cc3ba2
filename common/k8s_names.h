// Kubernetes' rules for names, label keys and values (apimachinery validation), written
// as plain character checks so that hostile input costs linear time.
#pragma once

#include <string>
#include <string_view>

namespace kaito {

// Each returns an empty string when `value` is valid, else what is wrong with it.
std::string CheckDnsLabel(std::string_view value);      // RFC 1123 label, <= 63.
std::string CheckDnsSubdomain(std::string_view value);  // RFC 1123 subdomain, <= 253.
std::string CheckQualifiedName(std::string_view value); // [prefix/]name, label keys.
std::string CheckLabelValue(std::string_view value);    // <= 63, may be empty.
std::string CheckConfigMapKey(std::string_view value);  // [-._a-zA-Z0-9]+, <= 253.

}  // namespace kaito
