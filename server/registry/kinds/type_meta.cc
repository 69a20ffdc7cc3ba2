#include "server/registry/kinds/type_meta.h"

#include <google/protobuf/util/message_differencer.h>

#include <algorithm>

#include "common/k8s_names.h"

namespace kaito::server {

void NormalizeTypeMeta(const std::string& default_version, const std::vector<std::string>& versions,
                       const std::string& kind, std::string* api_version, std::string* got_kind,
                       FieldErrors& errors) {
  if (api_version->empty()) *api_version = default_version;
  if (std::find(versions.begin(), versions.end(), *api_version) == versions.end()) {
    std::string supported;
    for (const auto& v : versions) supported += (supported.empty() ? "\"" : ", \"") + v + "\"";
    errors.Add("apiVersion",
               "Unsupported value: \"" + *api_version + "\": supported values: " + supported);
  }
  if (got_kind->empty()) *got_kind = kind;
  if (*got_kind != kind) {
    errors.Add("kind", "Invalid value: \"" + *got_kind + "\": must be " + kind);
  }
}

void CheckKeys(const google::protobuf::Map<std::string, std::string>& map,
               const std::string& path, FieldErrors& errors) {
  for (const auto& [k, v] : map) {
    if (std::string e = CheckConfigMapKey(k); !e.empty()) errors.Add(path, e);
  }
}

void CheckStringWithin(const std::string& value, size_t limit, const std::string& path,
                       FieldErrors& errors) {
  if (value.size() > limit) {
    errors.Add(path, "Too long: may not be more than " + std::to_string(limit) + " bytes");
  }
}

bool EqualExcept(const google::protobuf::Message& a, const google::protobuf::Message& b,
                 std::initializer_list<const char*> ignored) {
  google::protobuf::util::MessageDifferencer differencer;
  for (const char* name : ignored) {
    if (const auto* field = a.GetDescriptor()->FindFieldByName(name)) {
      differencer.IgnoreField(field);
    }
  }
  return differencer.Compare(a, b);
}

}  // namespace kaito::server
