// Server-side printing (meta.k8s.io/v1 Table), which `kubectl get` asks for: the columns of
// Kaito's printer columns for workspaces (the seed document's NAME INSTANCE RESOURCEREADY
// INFERENCEREADY WORKSPACEREADY AGE, and with priority 1, shown by `-o wide`, JOBSTARTED
// WORKSPACESUCCEEDED TARGETNODECOUNT STATE), and kube-apiserver's for ConfigMaps
// (NAME DATA AGE) and Secrets (NAME TYPE DATA AGE).
#pragma once

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "absl/time/time.h"
#include "tools/kube-shim/resources.h"

namespace kaito::shim {

// What each row carries besides its cells (the `includeObject` parameter).
enum class RowObject { kNone, kMetadata, kObject };

nlohmann::ordered_json TableColumns(const ResourceType& resource);

// One row for `object`, whose JSON (as served) is `object_json`.
nlohmann::ordered_json TableRow(const google::protobuf::Message& object,
                                const nlohmann::ordered_json& object_json, RowObject include,
                                absl::Time now);

// {kind: PartialObjectMetadata, apiVersion: meta.k8s.io/v1, metadata: ...}.
nlohmann::ordered_json PartialMetadata(const nlohmann::ordered_json& object_json);

}  // namespace kaito::shim
