#include "tools/kube-shim/table.h"

#include <google/protobuf/util/time_util.h>

#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "tools/kaitoctl/printers.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;

json Column(const char* name, const char* type, const char* description, int priority = 0,
            const char* format = "") {
  return {{"name", name},
          {"type", type},
          {"format", format},
          {"description", description},
          {"priority", priority}};
}

std::string Age(const google::protobuf::Timestamp& created, absl::Time now) {
  if (created.seconds() == 0 && created.nanos() == 0) return "<unknown>";
  absl::Time t = absl::FromUnixSeconds(created.seconds()) + absl::Nanoseconds(created.nanos());
  return ctl::HumanAge(now - t);
}

json WorkspaceCells(const v1::Workspace& ws, absl::Time now) {
  const auto& status = ws.status();
  return {ws.metadata().name(),
          ws.resource().instance_type(),
          ctl::ConditionStatus(ws, "ResourceReady"),
          ctl::ConditionStatus(ws, "InferenceReady"),
          ctl::ConditionStatus(ws, "JobStarted"),
          ctl::ConditionStatus(ws, "WorkspaceSucceeded"),
          ctl::ConditionStatus(ws, "WorkspaceReady"),
          status.target_node_count(),
          status.state(),
          Age(ws.metadata().creation_timestamp(), now)};
}

template <typename T>
int DataCount(const T& object) {
  return static_cast<int>(object.data_size());
}

}  // namespace

json TableColumns(const ResourceType& resource) {
  const char* name_doc = "Name must be unique within a namespace.";
  const char* age_doc =
      "CreationTimestamp is a timestamp representing the server time when this object was "
      "created.";
  if (resource.kind == "Workspace") {
    return json::array({Column("Name", "string", name_doc, 0, "name"),
                        Column("Instance", "string", "The GPU instance type"),
                        Column("ResourceReady", "string", "The ResourceReady condition"),
                        Column("InferenceReady", "string", "The InferenceReady condition"),
                        Column("JobStarted", "string", "The JobStarted condition", 1),
                        Column("WorkspaceSucceeded", "string", "The WorkspaceSucceeded condition", 1),
                        Column("WorkspaceReady", "string", "The WorkspaceReady condition"),
                        Column("TargetNodeCount", "integer", "Nodes the workspace needs", 1),
                        Column("State", "string", "The workspace's state", 1),
                        Column("Age", "date", age_doc)});
  }
  if (resource.kind == "Secret") {
    return json::array({Column("Name", "string", name_doc, 0, "name"),
                        Column("Type", "string", "The type of the secret"),
                        Column("Data", "string", "The number of keys in the secret"),
                        Column("Age", "string", age_doc)});
  }
  return json::array({Column("Name", "string", name_doc, 0, "name"),
                      Column("Data", "string", "The number of keys in the config map"),
                      Column("Age", "string", age_doc)});
}

json PartialMetadata(const json& object_json) {
  json meta = object_json.contains("metadata") ? object_json["metadata"] : json::object();
  return {{"kind", "PartialObjectMetadata"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", std::move(meta)}};
}

json TableRow(const google::protobuf::Message& object, const json& object_json, RowObject include, absl::Time now) {
  json cells;
  if (const auto* ws = dynamic_cast<const v1::Workspace*>(&object)) {
    cells = WorkspaceCells(*ws, now);
  } else if (const auto* secret = dynamic_cast<const v1::Secret*>(&object)) {
    cells = {secret->metadata().name(), secret->type().empty() ? "Opaque" : secret->type(),
             DataCount(*secret), Age(secret->metadata().creation_timestamp(), now)};
  } else if (const auto* cm = dynamic_cast<const v1::ConfigMap*>(&object)) {
    cells = {cm->metadata().name(), DataCount(*cm) + cm->binary_data_size(),
             Age(cm->metadata().creation_timestamp(), now)};
  }
  json row = {{"cells", std::move(cells)}};
  if (include == RowObject::kMetadata) row["object"] = PartialMetadata(object_json);
  if (include == RowObject::kObject) row["object"] = object_json;
  return row;
}

}  // namespace kaito::shim
