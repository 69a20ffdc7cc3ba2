// The kinds kaitoctl serves and the names a user may call them by, as `kubectl
// api-resources` lists them: plural, singular, short names, `plural.group` and
// `plural.version.group` (`workspaces.kaito.sh`, `ws`), and the `TYPE/NAME` form.
//
// Each kind also says how it prints: its API version and kind, its `-o name` prefix and its
// table columns. Everything here is pure and fixed at compile time.
#pragma once

#include <google/protobuf/message.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kaito::ctl {

// The `-o table|wide` columns of a kind. `row` is called with the kind's own message.
struct TableColumns {
  std::function<std::vector<std::string>(bool wide, bool with_namespace)> headers;
  std::function<std::vector<std::string>(const google::protobuf::Message& object, absl::Time now,
                                         bool wide, bool with_namespace)>
      row;
};

struct ResourceType {
  std::string plural;    // "workspaces"
  std::string singular;  // "workspace"
  std::vector<std::string> short_names;
  std::string group;    // "kaito.sh"; empty for Kubernetes' core group (configmaps, ...).
  std::string version;  // "v1beta1"
  std::string kind;     // "Workspace"
  bool namespaced = true;
  // The API message, e.g. "kaito.v1.Workspace", which `explain` describes.
  std::string message_name;
  TableColumns columns;

  // "kaito.sh/v1beta1", or "v1" for the core group.
  std::string ApiVersion() const;
  // What `-o name` prints before "/NAME", as kubectl: "workspace.kaito.sh", "configmap".
  std::string NamePrefix() const;
};

// Every kind, in `kubectl api-resources` order (core group first, then by group and name).
const std::vector<ResourceType>& ResourceTypes();

// The kind `name` means (case-insensitive): plural, singular, a short name,
// `plural.group`, `singular.group` or `plural.version.group`; null when none.
const ResourceType* FindResourceType(absl::string_view name);

// What the positional arguments of `get`, `describe`, `delete` and `wait` select: one kind
// and the names given for it (none: every object, or as -l selects).
struct ResourceSelection {
  const ResourceType* type = nullptr;
  std::vector<std::string> names;
};

// kubectl's forms: `TYPE [NAME...]`, `TYPE1,TYPE2 [NAME...]` or `TYPE/NAME...`, for `verb`
// (named when no type is given). An unknown type is `the server doesn't have a resource
// type "X"`, as kubectl says it; mixing the two forms is an error as in kubectl.
absl::StatusOr<std::vector<ResourceSelection>> ParseResourceArgs(
    const std::vector<std::string>& args, absl::string_view verb = "get");

// `kubectl api-resources`: NAME SHORTNAMES APIVERSION NAMESPACED KIND, or with `names_only`
// one `plural.group` (plural for the core group) per line, as `-o name`.
std::string FormatApiResources(bool names_only);

}  // namespace kaito::ctl
