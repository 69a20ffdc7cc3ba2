// What the controllers read and write: the registries of every kind, with the labels,
// finalizers and names that tie the objects of one workspace together.
#pragma once

#include <string>

#include "common/logging.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/event.pb.h"
#include "kaito/v1/node.pb.h"
#include "kaito/v1/nodeclaim.pb.h"
#include "kaito/v1/workload.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "server/registry/kinds/workspace_policy.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// Ownership labels, as Kaito's (workspace name and namespace on claims, nodes and
// workloads), and the claim a node was made for.
inline constexpr const auto& kLabelWorkspace = kWorkspaceLabel;
inline constexpr const auto& kLabelWorkspaceNamespace = kWorkspaceNamespaceLabel;
inline constexpr char kLabelNodeClaim[] = "kaito.sh/nodeclaim";
inline constexpr char kLabelInstanceType[] = "node.kubernetes.io/instance-type";
// Set on nodes registered by an agent: their readiness is the agent's lease.
inline constexpr char kAnnotationAgentManaged[] = "kaito.sh/agent-managed";

inline constexpr char kWorkspaceFinalizer[] = "workspace.finalizer.kaito.sh";
// Held by a workload until its agent has stopped it (or its node is gone).
inline constexpr char kWorkloadFinalizer[] = "kaito.sh/node-agent";
// Held by a node claim until the provisioner has released its machine.
inline constexpr char kNodeClaimFinalizer[] = "kaito.sh/termination";

struct ControlPlaneObjects {
  ObjectRegistry<v1::Workspace>* workspaces = nullptr;
  ObjectRegistry<v1::Node>* nodes = nullptr;
  ObjectRegistry<v1::NodeClaim>* nodeclaims = nullptr;
  ObjectRegistry<v1::Workload>* workloads = nullptr;
  ObjectRegistry<v1::Event>* events = nullptr;
  ObjectRegistry<v1::ConfigMap>* configmaps = nullptr;
};

// "namespace/name" work-queue keys (cluster-scoped kinds use the name alone).
inline std::string NamespacedKey(const std::string& ns, const std::string& name) {
  return ns + "/" + name;
}
inline std::pair<std::string, std::string> SplitKey(const std::string& key) {
  const size_t slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

inline bool HasFinalizer(const v1::ObjectMeta& meta, const std::string& finalizer) {
  for (const auto& f : meta.finalizers()) {
    if (f == finalizer) return true;
  }
  return false;
}
inline void RemoveFinalizer(v1::ObjectMeta* meta, const std::string& finalizer) {
  auto* f = meta->mutable_finalizers();
  for (int i = f->size() - 1; i >= 0; --i) {
    if (f->Get(i) == finalizer) f->erase(f->begin() + i);
  }
}

}  // namespace kaito::server
