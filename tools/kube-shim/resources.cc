#include "tools/kube-shim/resources.h"

#include <algorithm>

#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito::shim {

bool ResourceType::Serves(const std::string& version) const {
  return std::find(versions.begin(), versions.end(), version) != versions.end();
}

const std::vector<ResourceType>& ServedResources() {
  static const auto* resources = [] {
    auto* r = new std::vector<ResourceType>();
    ResourceType ws;
    ws.group = "kaito.sh";
    ws.versions = {"v1beta1", "v1alpha1"};
    ws.plural = "workspaces";
    ws.singular = "workspace";
    ws.kind = "Workspace";
    ws.short_names = {"wk", "wks"};
    ws.categories = {"workspace"};
    ws.watchable = true;
    ws.has_status = true;
    ws.descriptor = v1::Workspace::descriptor();
    r->push_back(ws);

    ResourceType cm;
    cm.versions = {"v1"};
    cm.plural = "configmaps";
    cm.singular = "configmap";
    cm.kind = "ConfigMap";
    cm.short_names = {"cm"};
    cm.descriptor = v1::ConfigMap::descriptor();
    r->push_back(cm);

    ResourceType secret;
    secret.versions = {"v1"};
    secret.plural = "secrets";
    secret.singular = "secret";
    secret.kind = "Secret";
    secret.write_only_values = true;
    secret.descriptor = v1::Secret::descriptor();
    r->push_back(secret);
    return r;
  }();
  return *resources;
}

const ResourceType* FindResource(const std::string& group, const std::string& version,
                                 const std::string& plural) {
  for (const auto& r : ServedResources()) {
    if (r.group == group && r.plural == plural && r.Serves(version)) return &r;
  }
  return nullptr;
}

std::vector<std::string> ServedGroups() {
  std::vector<std::string> groups;
  for (const auto& r : ServedResources()) {
    if (!r.group.empty() && std::find(groups.begin(), groups.end(), r.group) == groups.end()) {
      groups.push_back(r.group);
    }
  }
  return groups;
}

}  // namespace kaito::shim
