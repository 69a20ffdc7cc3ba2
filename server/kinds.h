// The policies of the kinds that kaito-server stores: Workspace, ConfigMap and Secret.
#pragma once

#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "object_registry.h"
#include "workspace_validator.h"

namespace kaito {

// Size limit of a ConfigMap's or Secret's data, as Kubernetes.
inline constexpr size_t kMaxDataBytes = 1 << 20;

// Extra validation for workspaces, run after the structural checks below. The Kaito
// admission rules plug in here.
using WorkspaceCheck =
    std::function<void(const v1::Workspace& workspace, const v1::Workspace* old,
                       FieldErrors& errors, std::vector<std::string>& warnings)>;

KindPolicy<v1::Workspace> WorkspacePolicy(WorkspaceCheck extra = nullptr);
KindPolicy<v1::ConfigMap> ConfigMapPolicy();
KindPolicy<v1::Secret> SecretPolicy();

// Structural checks of a workspace that do not need the catalogs: API version and kind,
// label selector syntax, schemaless fields within bounds.
void ValidateWorkspaceStructure(const v1::Workspace& workspace, FieldErrors& errors);

}  // namespace kaito
