#include "tools/kaitoctl/resource_types.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/event.pb.h"
#include "kaito/v1/node.pb.h"
#include "kaito/v1/nodeclaim.pb.h"
#include "kaito/v1/presets.pb.h"
#include "kaito/v1/workload.pb.h"
#include "kaito/v1/workspace.pb.h"
#include "tools/kaitoctl/printers.h"

namespace kaito::ctl {
namespace {

constexpr char kKaitoGroup[] = "kaito.sh";
constexpr char kKaitoVersion[] = "v1beta1";

// Columns from a kind's typed printers; `Row(const T&, now, wide, with_namespace)`.
template <typename T, typename Headers, typename Row>
TableColumns Columns(Headers headers, Row row) {
  return {headers, [row](const google::protobuf::Message& m, absl::Time now, bool wide,
                         bool with_namespace) {
            return row(static_cast<const T&>(m), now, wide, with_namespace);
          }};
}

std::vector<ResourceType> BuildTypes() {
  std::vector<ResourceType> types;
  types.push_back({"configmaps",
                   "configmap",
                   {"cm"},
                   "",
                   "v1",
                   "ConfigMap",
                   true,
                   "kaito.v1.ConfigMap",
                   Columns<v1::ConfigMap>([](bool, bool ns) { return DataHeaders(ns); },
                                          [](const v1::ConfigMap& m, absl::Time now, bool,
                                             bool ns) { return ConfigMapRow(m, now, ns); })});
  types.push_back({"events",
                   "event",
                   {"ev"},
                   "",
                   "v1",
                   "Event",
                   true,
                   "kaito.v1.Event",
                   Columns<v1::Event>(EventHeaders, EventRow)});
  types.push_back({"nodes",
                   "node",
                   {"no"},
                   "",
                   "v1",
                   "Node",
                   false,
                   "kaito.v1.Node",
                   Columns<v1::Node>([](bool wide, bool) { return NodeHeaders(wide); },
                                     [](const v1::Node& n, absl::Time now, bool wide, bool) {
                                       return NodeRow(n, now, wide);
                                     })});
  types.push_back({"secrets",
                   "secret",
                   {},
                   "",
                   "v1",
                   "Secret",
                   true,
                   "kaito.v1.Secret",
                   Columns<v1::Secret>([](bool, bool ns) { return DataHeaders(ns); },
                                       [](const v1::Secret& s, absl::Time now, bool, bool ns) {
                                         return SecretRow(s, now, ns);
                                       })});
  types.push_back({"nodeclaims",
                   "nodeclaim",
                   {"nc"},
                   kKaitoGroup,
                   kKaitoVersion,
                   "NodeClaim",
                   false,
                   "kaito.v1.NodeClaim",
                   Columns<v1::NodeClaim>([](bool wide, bool) { return NodeClaimHeaders(wide); },
                                          [](const v1::NodeClaim& c, absl::Time now, bool wide,
                                             bool) { return NodeClaimRow(c, now, wide); })});
  types.push_back({"presets",
                   "preset",
                   {},
                   kKaitoGroup,
                   kKaitoVersion,
                   "Preset",
                   false,
                   "kaito.v1.ModelInfo",
                   Columns<v1::ModelInfo>([](bool wide, bool) { return PresetHeaders(wide); },
                                          [](const v1::ModelInfo& m, absl::Time, bool wide, bool) {
                                            return PresetRow(m, wide);
                                          })});
  types.push_back({"skus",
                   "sku",
                   {},
                   kKaitoGroup,
                   kKaitoVersion,
                   "Sku",
                   false,
                   "kaito.v1.SkuInfo",
                   Columns<v1::SkuInfo>(
                       [](bool, bool) { return SkuHeaders(); },
                       [](const v1::SkuInfo& s, absl::Time, bool, bool) { return SkuRow(s); })});
  types.push_back({"workloads",
                   "workload",
                   {"wl"},
                   kKaitoGroup,
                   kKaitoVersion,
                   "Workload",
                   true,
                   "kaito.v1.Workload",
                   Columns<v1::Workload>(WorkloadHeaders, WorkloadRow)});
  // Kaito's CRD declares the short names wk and wks; ws is this project's.
  types.push_back({"workspaces",
                   "workspace",
                   {"ws", "wk", "wks"},
                   kKaitoGroup,
                   kKaitoVersion,
                   "Workspace",
                   true,
                   "kaito.v1.Workspace",
                   Columns<v1::Workspace>(WorkspaceHeaders, WorkspaceRow)});
  return types;
}

bool Names(const ResourceType& type, absl::string_view name) {
  if (name == type.plural || name == type.singular) return true;
  for (const std::string& s : type.short_names) {
    if (name == s) return true;
  }
  if (type.group.empty()) return false;
  for (const std::string& base : {type.plural, type.singular}) {
    if (name == absl::StrCat(base, ".", type.group) ||
        name == absl::StrCat(base, ".", type.version, ".", type.group)) {
      return true;
    }
  }
  return false;
}

absl::Status UnknownType(absl::string_view name) {
  return absl::NotFoundError(
      absl::StrCat("the server doesn't have a resource type \"", name, "\""));
}

// `TYPE/NAME` arguments, one selection each.
absl::StatusOr<std::vector<ResourceSelection>> SlashForms(const std::vector<std::string>& args) {
  std::vector<ResourceSelection> out;
  for (const std::string& arg : args) {
    const size_t slash = arg.find('/');
    if (slash == std::string::npos) {
      return absl::InvalidArgumentError(
          "there is no need to specify a resource type as a separate argument when passing "
          "arguments in resource/name form (e.g. 'kaitoctl get resource/<resource_name>' "
          "instead of 'kaitoctl get resource resource/<resource_name>')");
    }
    const std::string type_name = arg.substr(0, slash);
    const std::string name = arg.substr(slash + 1);
    const ResourceType* type = FindResourceType(type_name);
    if (type == nullptr) return UnknownType(type_name);
    if (name.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("arguments in resource/name form must have "
                       "a single resource and name: \"",
                       arg, "\""));
    }
    out.push_back({type, {name}});
  }
  return out;
}

}  // namespace

std::string ResourceType::ApiVersion() const {
  return group.empty() ? version : absl::StrCat(group, "/", version);
}

std::string ResourceType::NamePrefix() const {
  return group.empty() ? singular : absl::StrCat(singular, ".", group);
}

const std::vector<ResourceType>& ResourceTypes() {
  static const auto* types = new std::vector<ResourceType>(BuildTypes());
  return *types;
}

const ResourceType* FindResourceType(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const ResourceType& type : ResourceTypes()) {
    if (Names(type, lower)) return &type;
  }
  return nullptr;
}

absl::StatusOr<std::vector<ResourceSelection>> ParseResourceArgs(
    const std::vector<std::string>& args, absl::string_view verb) {
  if (args.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("you must specify the type of resource to ", verb,
                     ". Use \"kaitoctl api-resources\" for a complete list of supported "
                     "resources"));
  }
  if (args[0].find('/') != std::string::npos) return SlashForms(args);
  std::vector<std::string> names(args.begin() + 1, args.end());
  for (const std::string& name : names) {
    if (name.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "there is no need to specify a resource type as a separate argument when passing "
          "arguments in resource/name form: \"",
          name, "\""));
    }
  }
  std::vector<ResourceSelection> out;
  for (absl::string_view type_name : absl::StrSplit(args[0], ',', absl::SkipEmpty())) {
    const ResourceType* type = FindResourceType(type_name);
    if (type == nullptr) return UnknownType(type_name);
    out.push_back({type, names});
  }
  if (out.empty()) return UnknownType(args[0]);
  return out;
}

std::string FormatApiResources(bool names_only) {
  std::vector<std::vector<std::string>> rows;
  if (!names_only) rows.push_back({"NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"});
  for (const ResourceType& type : ResourceTypes()) {
    if (names_only) {
      rows.push_back({type.group.empty() ? type.plural : type.plural + "." + type.group});
    } else {
      rows.push_back({type.plural, absl::StrJoin(type.short_names, ","), type.ApiVersion(),
                      type.namespaced ? "true" : "false", type.kind});
    }
  }
  return FormatTable(rows);
}

}  // namespace kaito::ctl
