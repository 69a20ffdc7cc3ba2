// The Workspace kind: Kaito's schema defaults, structural checks, and the Kaito admission
// rules plugged in by the server; status is owned by the controller (UpdateStatus).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/field_errors.h"
#include "kaito/v1/workspace.pb.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// Counts the times a workspace in state Failed was applied again with its spec unchanged:
// the controller replaces the failed node claims and workloads made before the newest
// request (they carry the count they were made under).
inline constexpr char kAnnotationRetryRequested[] = "kaito.sh/retry-requested";

// Extra validation for workspaces, run after the structural checks below. The Kaito
// admission rules plug in here.
using WorkspaceCheck =
    std::function<void(const v1::Workspace& workspace, const v1::Workspace* old,
                       FieldErrors& errors, std::vector<std::string>& warnings)>;

KindPolicy<v1::Workspace> WorkspacePolicy(WorkspaceCheck extra = nullptr);

// Structural checks of a workspace that do not need the catalogs: API version and kind,
// label selector syntax, schemaless fields within bounds.
void ValidateWorkspaceStructure(const v1::Workspace& workspace, FieldErrors& errors);

}  // namespace kaito::server
