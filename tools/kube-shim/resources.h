// The Kubernetes resources the shim serves, as discovery names them: Kaito's Workspace
// (group kaito.sh, versions v1beta1 and v1alpha1, as Kaito's CRD) and the core v1
// ConfigMaps and Secrets that Kaito's manifests carry.
#pragma once

#include <string>
#include <vector>

#include <google/protobuf/descriptor.h>

namespace kaito::shim {

struct ResourceType {
  std::string group;                  // "" for the core group.
  std::vector<std::string> versions;  // Preferred first.
  std::string plural;                 // "workspaces"
  std::string singular;               // "workspace"
  std::string kind;                   // "Workspace"
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  bool watchable = false;
  bool has_status = false;  // A read-only status subresource.
  bool write_only_values = false;  // Secrets: reads never carry values.
  const google::protobuf::Descriptor* descriptor = nullptr;

  // "workspaces.kaito.sh", or "configmaps" for the core group: how Kubernetes names the
  // resource in messages.
  std::string QualifiedName() const { return group.empty() ? plural : plural + "." + group; }
  // "kaito.sh/v1beta1", or "v1" for the core group.
  std::string ApiVersion(const std::string& version) const {
    return group.empty() ? version : group + "/" + version;
  }
  bool Serves(const std::string& version) const;
};

// Every served resource, in a fixed order.
const std::vector<ResourceType>& ServedResources();

// The resource of `group`/`version` with plural name `plural`; null when none.
const ResourceType* FindResource(const std::string& group, const std::string& version,
                                 const std::string& plural);

// The groups served under /apis (the core group is under /api).
std::vector<std::string> ServedGroups();

}  // namespace kaito::shim
