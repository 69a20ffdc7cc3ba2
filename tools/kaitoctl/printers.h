// How kaitoctl shows workspaces: the table of the seed document, describe, and ages.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito::ctl {

// "True", "False" or "Unknown" (no such condition yet).
std::string ConditionStatus(const v1::Workspace& ws, const std::string& type);

// kubectl's short age: "42s", "5m10s", "45m", "3h20m", "20h", "3d4h", "12d", "2y".
std::string HumanAge(absl::Duration age);

// Column headers and one row per workspace. `wide` adds JOBSTARTED, WORKSPACESUCCEEDED,
// TARGETNODES, STATE, NODES; `with_namespace` puts NAMESPACE first.
std::vector<std::string> WorkspaceHeaders(bool wide, bool with_namespace);
std::vector<std::string> WorkspaceRow(const v1::Workspace& ws, absl::Time now, bool wide,
                                      bool with_namespace);

// Left-aligned columns separated by three spaces, as kubectl prints.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// The dry-run plan, indented under the "created (server dry run)" line.
std::string FormatPlan(const v1::WorkspacePlan& plan);

// The human-readable `describe workspace` text.
std::string DescribeWorkspace(const v1::Workspace& ws, absl::Time now);

}  // namespace kaito::ctl
