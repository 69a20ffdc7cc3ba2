#include "server/registry/kinds/secret_policy.h"

#include "common/k8s_names.h"
#include "server/registry/kinds/type_meta.h"

namespace kaito::server {

KindPolicy<v1::Secret> SecretPolicy() {
  KindPolicy<v1::Secret> p;
  p.kind = "Secret";
  p.resource = "secrets";
  p.name_is_dns_label = false;
  p.normalize = [](v1::Secret& s, FieldErrors& errors) {
    NormalizeTypeMeta("v1", {"v1"}, "Secret", s.mutable_api_version(), s.mutable_kind(), errors);
    if (s.type().empty()) s.set_type("Opaque");
  };
  p.prepare = [](v1::Secret& s, const v1::Secret* stored) {
    // stringData is a write-only convenience: merged into data, never stored.
    for (const auto& [k, v] : s.string_data()) (*s.mutable_data())[k] = v;
    s.clear_string_data();
    // An immutable secret's values stay as they are: an update without data changes its
    // metadata (values are never read back, so a client cannot send them again).
    if (stored && stored->immutable() && s.data().empty()) *s.mutable_data() = stored->data();
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
    if (old && old->immutable() && !s.immutable()) {
      errors.Add("immutable", "Forbidden: field is immutable when `immutable` is set");
    }
    if (old && old->type() != s.type()) {
      errors.Add("type", "Invalid value: \"" + s.type() + "\": field is immutable");
    }
  };
  p.check_update_request = [](const v1::Secret& request, const v1::Secret& stored,
                               FieldErrors& errors) {
    // Refused whatever the values are: comparing them with the stored ones would tell a
    // client whether it guessed them.
    if (stored.immutable() && (!request.data().empty() || !request.string_data().empty())) {
      errors.Add("data", "Forbidden: field is immutable when `immutable` is set (send the "
                         "update without data to change metadata)");
    }
  };
  // Values are never compared: an update that carries values is a change, so that neither
  // `generation` nor an "unchanged" reply tells whether they equal the stored ones.
  p.spec_equal = [](const v1::Secret& a, const v1::Secret& b) {
    return a.data().empty() && b.data().empty() && EqualExcept(a, b, {"metadata"});
  };
  p.redact = [](v1::Secret& s) {
    for (auto& [k, v] : *s.mutable_data()) v.clear();
    s.clear_string_data();
  };
  return p;
}

}  // namespace kaito::server
