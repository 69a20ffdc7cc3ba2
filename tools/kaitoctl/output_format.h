// What `get` prints, in the format `-o` names: kubectl's table (with `--show-labels` and
// `--no-headers`), `wide`, `json`, `yaml`, `name`, `jsonpath=TEMPLATE` and
// `custom-columns=HEADER:PATH,...`; and `--sort-by=PATH`.
//
// A collection (`get TYPE`) prints as one `apiVersion: v1, kind: List` with `items` in json
// and yaml, also when it holds one item or none, and jsonpath runs against that List; a
// named object (`get TYPE NAME`) prints alone. Objects are seen as `-o json` shows them:
// protobuf JSON with the Kubernetes names (`MessageToJson`).
//
// Everything here is pure: it formats what it is given at the time `now` it is given.
#pragma once

#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/kaitoctl/jsonpath.h"
#include "tools/kaitoctl/resource_types.h"

namespace kaito::ctl {

enum class OutputKind { kTable, kWide, kJson, kYaml, kName, kJsonPath, kCustomColumns };

struct CustomColumn {
  std::string header;
  JsonPath path;
};

struct OutputFormat {
  OutputKind kind = OutputKind::kTable;
  std::optional<JsonPath> jsonpath;   // kJsonPath.
  std::vector<CustomColumn> columns;  // kCustomColumns.

  // Table-like formats print rows, a header, and "No resources found" when empty.
  bool IsTable() const { return kind == OutputKind::kTable || kind == OutputKind::kWide; }
};

// `-o`'s value: "" (table), "wide", "json", "yaml", "name", "jsonpath=TEMPLATE",
// "custom-columns=HEADER:PATH,...". A leading "=" is dropped, so that `-o=json` reads as
// `-o json`. An unknown format or a bad template is INVALID_ARGUMENT naming it.
absl::StatusOr<OutputFormat> ParseOutputFormat(std::string spec);

// One object to print: its message (yaml, table rows) and its `-o json` form.
struct PrintedObject {
  const google::protobuf::Message* message = nullptr;
  Json json;
};

// `message` with its JSON form, as `MessageToJson` prints it.
PrintedObject ToPrinted(const google::protobuf::Message& message);

struct PrintOptions {
  OutputFormat format;
  bool no_headers = false;      // Tables and custom columns: no header row.
  bool show_labels = false;     // Tables: a LABELS column last.
  bool with_namespace = false;  // Tables: a NAMESPACE column first (`-A`).
  absl::Time now;
};

// The text for `objects` of `type`. `as_list`: a collection (json/yaml/jsonpath see one
// List); otherwise each object alone (a named get, or one watch event). `with_header`:
// whether a table starts with its header (a watch prints it once).
std::string FormatObjects(const ResourceType& type, const std::vector<PrintedObject>& objects,
                          const PrintOptions& options, bool as_list, bool with_header = true);

// `-o name`'s line for one object: "workspace.kaito.sh/NAME".
std::string ObjectName(const ResourceType& type, const Json& object);

// `--show-labels`' cell: "k1=v1,k2=v2" sorted by key, or "<none>".
std::string LabelsText(const Json& object);

// The order `--sort-by` puts `objects` in, as their indexes: by what `key` selects in each
// (its first value), numbers by value, strings in byte order, objects with nothing there
// first; stable for ties.
std::vector<size_t> SortOrder(const std::vector<PrintedObject>& objects, const JsonPath& key);

// Sorts `objects` in `SortOrder`.
void SortObjects(std::vector<PrintedObject>& objects, const JsonPath& key);

// The List json and yaml print, from the objects' JSON / YAML texts.
Json ListJson(const std::vector<PrintedObject>& objects);
std::string FormatYamlList(const std::vector<std::string>& item_yamls);

}  // namespace kaito::ctl
