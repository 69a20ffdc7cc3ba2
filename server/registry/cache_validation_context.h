// The world as validation and sizing see it, read from the caches.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "presets/workspace_validator.h"
#include "server/registry/object_cache.h"
#include "server/registry/object_meta.h"

namespace kaito::server {

// Validation reads nodes and config maps from the caches: no disk, no waiting.
class CacheValidationContext final : public presets::ValidationContext {
 public:
  // `secrets` may be null (then every Secret is taken to exist).
  CacheValidationContext(ObjectCache* nodes, ObjectCache* configmaps,
                         ObjectCache* secrets = nullptr)
      : nodes_(nodes), configmaps_(configmaps), secrets_(secrets) {}

  std::vector<v1::Node> NodesMatching(const LabelSelectorMatcher& selector) override {
    std::vector<v1::Node> out;
    for (const CachedObject& c : nodes_->List("/nodes/", "", 0, [&](const auto& m) {
           return selector.Matches(Metadata(m).labels());
         }).items) {
      out.push_back(static_cast<const v1::Node&>(*c.object));
    }
    return out;
  }

  std::optional<v1::ConfigMap> GetConfigMap(const std::string& ns,
                                            const std::string& name) override {
    auto c = configmaps_->Get("/configmaps/" + ns + "/" + name);
    if (!c) return std::nullopt;
    return static_cast<const v1::ConfigMap&>(*c->object);
  }

  bool SecretExists(const std::string& ns, const std::string& name) override {
    return secrets_ == nullptr || secrets_->Get("/secrets/" + ns + "/" + name).has_value();
  }

 private:
  ObjectCache* nodes_;
  ObjectCache* configmaps_;
  ObjectCache* secrets_;
};

}  // namespace kaito::server
