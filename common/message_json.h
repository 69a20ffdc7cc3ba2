// Proto3 JSON written straight from a message by reflection: the Kubernetes names (each
// field's json_name), defaults omitted, 64-bit integers as numbers, enums by name, bytes in
// base64, Timestamps in RFC 3339, Struct/Value/ListValue as free-form JSON, map keys in
// sorted order (as Kubernetes prints them). The same JSON as protobuf's printer followed by
// the codec's integer rewrite gives, at a tenth of the cost: no TypeResolver, no
// intermediate JSON tree. Strings are escaped as nlohmann::json escapes them.
#pragma once

#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaito {

// Members written first, as "key":"value" (the value a JSON string), each replacing the
// top-level field of that JSON name: apiVersion and kind as the caller serves them.
using JsonHead = std::vector<std::pair<std::string, std::string>>;

// The compact JSON of `message`, or nullopt where it holds what this writer leaves to
// protobuf's printer: a well-known type other than Timestamp, Struct, Value and ListValue;
// a Timestamp outside years 1 to 9999; a non-finite double in a Value; invalid UTF-8.
std::optional<std::string> WriteMessageJson(const google::protobuf::Message& message,
                                            const JsonHead& head = {});

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF), as protobuf requires of its strings and Kubernetes of its YAML.
bool IsValidUtf8(std::string_view s);

// Appends `s` as a JSON string (quotes included), escaped as nlohmann::json dumps it.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace kaito
