// The sizing plan of a workspace: which GPUs, how many nodes, how much GPU memory per
// GPU. What `kaitoctl apply --dry-run` shows, and what the controller will act on.
#pragma once

#include "kaito/v1/workspace.pb.h"
#include "presets/workspace_validator.h"

namespace kaito::presets {

// The plan's instance type when the workspace runs on nodes it does not provision.
inline constexpr char kPlanBringYourOwnNodes[] = "bring-your-own nodes";

// A valid workspace's plan. Sizing problems (an unknown SKU under Azure's escape rule,
// a GPU too small for the KV cache) go into `sizing_error`; the rest stays filled in.
v1::WorkspacePlan PlanWorkspace(const Catalog& catalog, const ValidationOptions& options,
                                ValidationContext& context, const v1::Workspace& ws);

}  // namespace kaito::presets
