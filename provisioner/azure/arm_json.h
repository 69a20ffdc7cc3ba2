// Tolerant reads of ARM's and AAD's JSON replies: a body that is not JSON, a missing
// member or one of another type reads as absent (null, ""); nothing throws. The one place
// the Azure code reads a reply's members, so that every reader treats bad input alike.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kaito::provisioner::azure {

// The body as JSON; a discarded (null) value when it is not JSON.
inline nlohmann::json ParseJson(const std::string& body) {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

// `object[key]`, or null when `object` is not an object or has no such member.
inline const nlohmann::json& JsonMember(const nlohmann::json& object, const char* key) {
  static const nlohmann::json kNull;
  if (!object.is_object()) return kNull;
  auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

// `object[key]` when it is a string, else "".
inline std::string JsonString(const nlohmann::json& object, const char* key) {
  const nlohmann::json& value = JsonMember(object, key);
  return value.is_string() ? value.get<std::string>() : "";
}

}  // namespace kaito::provisioner::azure
