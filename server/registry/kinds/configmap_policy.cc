#include "server/registry/kinds/configmap_policy.h"

#include <google/protobuf/util/message_differencer.h>

#include "common/k8s_names.h"
#include "server/registry/kinds/type_meta.h"

namespace kaito::server {

using google::protobuf::util::MessageDifferencer;

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
      v1::ConfigMap a = cm, b = *old;
      a.clear_metadata();
      b.clear_metadata();
      if (!MessageDifferencer::Equals(a, b)) {
        errors.Add("data", "Forbidden: field is immutable when `immutable` is set");
      }
    }
  };
  p.spec_equal = [](const v1::ConfigMap& a, const v1::ConfigMap& b) {
    v1::ConfigMap x = a, y = b;
    x.clear_metadata();
    y.clear_metadata();
    return MessageDifferencer::Equals(x, y);
  };
  return p;
}

}  // namespace kaito::server
