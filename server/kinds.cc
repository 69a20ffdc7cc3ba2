#include "kinds.h"

#include <google/protobuf/util/message_differencer.h>

namespace kaito {
namespace {

using google::protobuf::util::MessageDifferencer;

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

template <typename Map>
size_t DataSize(const Map& map) {
  size_t n = 0;
  for (const auto& [k, v] : map) n += k.size() + v.size();
  return n;
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

}  // namespace

void ValidateWorkspaceStructure(const v1::Workspace& ws, FieldErrors& errors) {
  if (ws.has_resource() && ws.resource().has_label_selector()) {
    LabelSelectorMatcher::FromProto(ws.resource().label_selector(), "resource.labelSelector",
                                    errors);
  }
  if (ws.resource().has_count() && ws.resource().count() < 0) {
    errors.Add("resource.count", "Invalid value: " + std::to_string(ws.resource().count()) +
                                     ": must be greater than or equal to 0");
  }
  CheckStringWithin(ws.resource().instance_type(), 253, "resource.instanceType", errors);
  CheckStringWithin(ws.inference().preset().name(), 253, "inference.preset.name", errors);
  CheckStringWithin(ws.tuning().preset().name(), 253, "tuning.preset.name", errors);
  CheckStringWithin(ws.inference().config(), 253, "inference.config", errors);
  CheckStringWithin(ws.tuning().config(), 253, "tuning.config", errors);
}

KindPolicy<v1::Workspace> WorkspacePolicy(WorkspaceCheck extra) {
  KindPolicy<v1::Workspace> p;
  p.kind = "Workspace";
  p.resource = "workspaces";
  p.name_is_dns_label = true;  // Kaito: the name must be a DNS-1123 label.
  p.normalize = [](v1::Workspace& ws, FieldErrors& errors) {
    NormalizeTypeMeta("kaito.sh/v1beta1", {"kaito.sh/v1beta1", "kaito.sh/v1alpha1"}, "Workspace",
                      ws.mutable_api_version(), ws.mutable_kind(), errors);
    // The defaults of Kaito's CRD schema, applied before validation and storing.
    if (!ws.resource().has_count()) ws.mutable_resource()->set_count(1);
    ws.mutable_resource()->set_instance_type(presets::EffectiveInstanceType(ws));
  };
  p.validate = [extra = std::move(extra)](const v1::Workspace& ws, const v1::Workspace* old,
                                          FieldErrors& errors,
                                          std::vector<std::string>& warnings) {
    ValidateWorkspaceStructure(ws, errors);
    if (errors.empty() && extra) extra(ws, old, errors, warnings);
  };
  p.spec_equal = [](const v1::Workspace& a, const v1::Workspace& b) {
    return MessageDifferencer::Equals(a.resource(), b.resource()) &&
           MessageDifferencer::Equals(a.inference(), b.inference()) &&
           MessageDifferencer::Equals(a.tuning(), b.tuning());
  };
  p.prepare = [](v1::Workspace& ws, const v1::Workspace* stored) {
    // Status is written only by the controller, never through Create or Update.
    if (stored) {
      *ws.mutable_status() = stored->status();
      if (!stored->has_status()) ws.clear_status();
    } else {
      ws.clear_status();
    }
  };
  return p;
}

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

KindPolicy<v1::Secret> SecretPolicy() {
  KindPolicy<v1::Secret> p;
  p.kind = "Secret";
  p.resource = "secrets";
  p.name_is_dns_label = false;
  p.normalize = [](v1::Secret& s, FieldErrors& errors) {
    NormalizeTypeMeta("v1", {"v1"}, "Secret", s.mutable_api_version(), s.mutable_kind(), errors);
    if (s.type().empty()) s.set_type("Opaque");
  };
  p.prepare = [](v1::Secret& s, const v1::Secret*) {
    // stringData is a write-only convenience: merged into data, never stored.
    for (const auto& [k, v] : s.string_data()) (*s.mutable_data())[k] = v;
    s.clear_string_data();
  };
  p.validate = [](const v1::Secret& s, const v1::Secret* old, FieldErrors& errors,
                  std::vector<std::string>&) {
    for (const auto& [k, v] : s.data()) {
      if (std::string e = CheckConfigMapKey(k); !e.empty()) errors.Add("data", e);
    }
    if (DataSize(s.data()) > kMaxDataBytes) {
      errors.Add("data", "Too long: must have at most " + std::to_string(kMaxDataBytes) + " bytes");
    }
    CheckStringWithin(s.type(), 253, "type", errors);
    if (old && old->immutable()) {
      v1::Secret a = s, b = *old;
      a.clear_metadata();
      b.clear_metadata();
      if (!MessageDifferencer::Equals(a, b)) {
        errors.Add("data", "Forbidden: field is immutable when `immutable` is set");
      }
    }
    if (old && old->type() != s.type()) {
      errors.Add("type", "Invalid value: \"" + s.type() + "\": field is immutable");
    }
  };
  p.spec_equal = [](const v1::Secret& a, const v1::Secret& b) {
    v1::Secret x = a, y = b;
    x.clear_metadata();
    y.clear_metadata();
    return MessageDifferencer::Equals(x, y);
  };
  p.redact = [](v1::Secret& s) {
    for (auto& [k, v] : *s.mutable_data()) v.clear();
    s.clear_string_data();
  };
  return p;
}

}  // namespace kaito
