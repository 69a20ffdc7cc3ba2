#include "server/registry/kinds/configmap_policy.h"

#include "common/k8s_names.h"
#include "server/registry/kinds/type_meta.h"

namespace kaito::server {

KindPolicy<v1::ConfigMap> ConfigMapPolicy() {
  KindPolicy<v1::ConfigMap> p;
  p.kind = "ConfigMap";
  p.resource = "configmaps";
  p.name_is_dns_label = false;
  p.normalize = [](v1::ConfigMap& cm, FieldErrors& errors) {
    NormalizeTypeMeta("v1", {"v1"}, "ConfigMap", cm.mutable_api_version(), cm.mutable_kind(),
                      errors);
  };
  p.validate = [](const v1::ConfigMap& cm, const v1::ConfigMap* old, FieldErrors& errors,
                  std::vector<std::string>&) {
    CheckKeys(cm.data(), "data", errors);
    for (const auto& [k, v] : cm.binary_data()) {
      if (std::string e = CheckConfigMapKey(k); !e.empty()) errors.Add("binaryData", e);
      if (cm.data().contains(k)) {
        errors.Add("data", "Invalid value: \"" + k + "\": duplicate of key present in binaryData");
      }
    }
    if (DataSize(cm.data()) + DataSize(cm.binary_data()) > kMaxDataBytes) {
      errors.Add("", "Too long: must have at most " + std::to_string(kMaxDataBytes) + " bytes");
    }
    if (old && old->immutable()) {
      if (!EqualExcept(cm, *old, {"metadata"})) {
        errors.Add("data", "Forbidden: field is immutable when `immutable` is set");
      }
    }
  };
  p.spec_equal = [](const v1::ConfigMap& a, const v1::ConfigMap& b) {
    return EqualExcept(a, b, {"metadata"});
  };
  return p;
}

}  // namespace kaito::server
