// Checks that every stored kind shares: apiVersion and kind, key syntax, sizes.
#pragma once

#include <string>
#include <vector>

#include <google/protobuf/map.h>
#include <google/protobuf/message.h>

#include <initializer_list>

#include "common/field_errors.h"

namespace kaito::server {

// Fills `api_version` and `got_kind` when empty; reports an unsupported version or a
// kind other than `kind`.
void NormalizeTypeMeta(const std::string& default_version, const std::vector<std::string>& versions,
                       const std::string& kind, std::string* api_version, std::string* got_kind,
                       FieldErrors& errors);

template <typename Map>
size_t DataSize(const Map& map) {
  size_t n = 0;
  for (const auto& [k, v] : map) n += k.size() + v.size();
  return n;
}

// Every key of `map` is a valid ConfigMap key.
void CheckKeys(const google::protobuf::Map<std::string, std::string>& map,
               const std::string& path, FieldErrors& errors);

// Whether `a` and `b` (of one type) are equal apart from the named top-level fields; a
// name the type does not have is ignored. What a kind's spec_equal is made of (`metadata`,
// and for the controller's kinds `status`).
bool EqualExcept(const google::protobuf::Message& a, const google::protobuf::Message& b,
                 std::initializer_list<const char*> ignored);

void CheckStringWithin(const std::string& value, size_t limit, const std::string& path,
                       FieldErrors& errors);

// Size limit of a ConfigMap's or Secret's data, as Kubernetes.
inline constexpr size_t kMaxDataBytes = 1 << 20;

}  // namespace kaito::server
