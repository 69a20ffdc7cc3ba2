#include "tools/kaitoctl/output_format.h"

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/manifest_codec.h"
#include "tools/kaitoctl/printers.h"

namespace kaito::ctl {
namespace {

constexpr char kFormats[] =
    "custom-columns, json, jsonpath, name, wide, yaml (and table, the default)";

// `HEADER:PATH,...` split at the commas outside brackets, braces and quotes, so that a path
// may hold `[0,1]` or a filter's `'a,b'`.
std::vector<std::string> SplitColumns(const std::string& spec) {
  std::vector<std::string> parts;
  std::string current;
  int depth = 0;
  char quote = 0;
  for (char c : spec) {
    if (quote != 0) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '[' || c == '{' || c == '(') {
      ++depth;
    } else if ((c == ']' || c == '}' || c == ')') && depth > 0) {
      --depth;
    } else if (c == ',' && depth == 0) {
      parts.push_back(std::move(current));
      current.clear();
      continue;
    }
    current += c;
  }
  parts.push_back(std::move(current));
  return parts;
}

absl::StatusOr<std::vector<CustomColumn>> ParseCustomColumns(const std::string& spec) {
  if (spec.empty()) {
    return absl::InvalidArgumentError(
        "custom-columns format specified but no custom columns given");
  }
  std::vector<CustomColumn> columns;
  for (const std::string& part : SplitColumns(spec)) {
    const size_t colon = part.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == part.size()) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected custom-columns spec: \"", part,
                                                     "\", expected <header>:<json-path-expr>"));
    }
    absl::StatusOr<JsonPath> path = JsonPath::ParseExpression(part.substr(colon + 1));
    if (!path.ok()) return path.status();
    columns.push_back({part.substr(0, colon), std::move(*path)});
  }
  return columns;
}

std::string JsonText(const Json& json) {
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// A custom column's cell: the values joined by ",", or "<none>".
std::string CellText(const JsonPath& path, const Json& object) {
  std::vector<std::string> values;
  for (const Json& v : path.Select(object)) values.push_back(JsonValueText(v));
  return values.empty() ? "<none>" : absl::StrJoin(values, ",");
}

std::string FormatCustomColumns(const std::vector<CustomColumn>& columns,
                                const std::vector<PrintedObject>& objects, bool with_header) {
  std::vector<std::vector<std::string>> rows;
  if (with_header) {
    std::vector<std::string> header;
    for (const CustomColumn& c : columns) header.push_back(c.header);
    rows.push_back(std::move(header));
  }
  for (const PrintedObject& o : objects) {
    std::vector<std::string> row;
    for (const CustomColumn& c : columns) row.push_back(CellText(c.path, o.json));
    rows.push_back(std::move(row));
  }
  return FormatTable(rows);
}

std::string FormatTableRows(const ResourceType& type, const std::vector<PrintedObject>& objects,
                            const PrintOptions& options, bool with_header) {
  const bool wide = options.format.kind == OutputKind::kWide;
  std::vector<std::vector<std::string>> rows;
  if (with_header) {
    rows.push_back(type.columns.headers(wide, options.with_namespace));
    if (options.show_labels) rows.back().push_back("LABELS");
  }
  for (const PrintedObject& o : objects) {
    rows.push_back(type.columns.row(*o.message, options.now, wide, options.with_namespace));
    if (options.show_labels) rows.back().push_back(LabelsText(o.json));
  }
  return FormatTable(rows);
}

// Objects each alone: JSON documents one after another, YAML documents separated by "---".
std::string FormatEach(const std::vector<PrintedObject>& objects, OutputKind kind) {
  std::string out;
  for (size_t i = 0; i < objects.size(); ++i) {
    if (kind == OutputKind::kJson) {
      out += JsonText(objects[i].json);
    } else {
      if (i > 0) out += "---\n";
      out += MessageToYaml(*objects[i].message);
    }
  }
  return out;
}

// Sort order of `--sort-by` values: nothing, then null, booleans, numbers, strings, the rest.
int TypeRank(const Json* v) {
  if (v == nullptr) return 0;
  if (v->is_null()) return 1;
  if (v->is_boolean()) return 2;
  if (v->is_number()) return 3;
  if (v->is_string()) return 4;
  return 5;
}

bool SortsBefore(const Json* a, const Json* b) {
  const int ra = TypeRank(a), rb = TypeRank(b);
  if (ra != rb) return ra < rb;
  if (ra == 0 || ra == 1) return false;
  if (ra == 5) return a->dump() < b->dump();
  return *a < *b;
}

}  // namespace

absl::StatusOr<OutputFormat> ParseOutputFormat(std::string spec) {
  if (absl::StartsWith(spec, "=")) spec.erase(0, 1);
  OutputFormat format;
  if (spec.empty() || spec == "table") return format;
  const std::map<std::string, OutputKind> plain = {{"wide", OutputKind::kWide},
                                                   {"json", OutputKind::kJson},
                                                   {"yaml", OutputKind::kYaml},
                                                   {"name", OutputKind::kName}};
  if (auto it = plain.find(spec); it != plain.end()) {
    format.kind = it->second;
    return format;
  }
  if (absl::StartsWith(spec, "jsonpath=")) {
    absl::StatusOr<JsonPath> path = JsonPath::Parse(spec.substr(9));
    if (!path.ok()) return path.status();
    format.kind = OutputKind::kJsonPath;
    format.jsonpath = std::move(*path);
    return format;
  }
  if (absl::StartsWith(spec, "custom-columns=") || spec == "custom-columns") {
    absl::StatusOr<std::vector<CustomColumn>> columns =
        ParseCustomColumns(spec.size() > 15 ? spec.substr(15) : "");
    if (!columns.ok()) return columns.status();
    format.kind = OutputKind::kCustomColumns;
    format.columns = std::move(*columns);
    return format;
  }
  if (spec == "jsonpath") {
    return absl::InvalidArgumentError("jsonpath template format specified but no template given");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unable to match a printer suitable for the output format \"", spec,
                   "\", allowed formats are: ", kFormats));
}

PrintedObject ToPrinted(const google::protobuf::Message& message) {
  PrintedObject o;
  o.message = &message;
  o.json = Json::parse(MessageToJson(message, false), nullptr, false);
  if (o.json.is_discarded()) o.json = Json::object();
  return o;
}

std::string ObjectName(const ResourceType& type, const Json& object) {
  const Json* name = nullptr;
  if (auto meta = object.find("metadata"); meta != object.end() && meta->is_object()) {
    if (auto n = meta->find("name"); n != meta->end()) name = &*n;
  } else if (auto n = object.find("name"); n != object.end()) {
    name = &*n;  // Presets and SKUs carry their name at the top.
  }
  return absl::StrCat(type.NamePrefix(), "/",
                      name != nullptr && name->is_string() ? name->get<std::string>() : "");
}

std::string LabelsText(const Json& object) {
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "<none>";
  auto labels = meta->find("labels");
  if (labels == meta->end() || !labels->is_object() || labels->empty()) return "<none>";
  std::map<std::string, std::string> sorted;
  for (auto it = labels->begin(); it != labels->end(); ++it) {
    sorted[it.key()] = JsonValueText(it.value());
  }
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

std::vector<size_t> SortOrder(const std::vector<PrintedObject>& objects, const JsonPath& key) {
  std::vector<std::optional<Json>> keys;
  for (const PrintedObject& o : objects) {
    std::vector<Json> values = key.Select(o.json);
    keys.push_back(values.empty() ? std::nullopt : std::optional<Json>(values.front()));
  }
  std::vector<size_t> order(objects.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&keys](size_t a, size_t b) {
    return SortsBefore(keys[a] ? &*keys[a] : nullptr, keys[b] ? &*keys[b] : nullptr);
  });
  return order;
}

void SortObjects(std::vector<PrintedObject>& objects, const JsonPath& key) {
  std::vector<PrintedObject> sorted;
  sorted.reserve(objects.size());
  for (size_t i : SortOrder(objects, key)) sorted.push_back(std::move(objects[i]));
  objects = std::move(sorted);
}

Json ListJson(const std::vector<PrintedObject>& objects) {
  Json list = Json::object();
  list["apiVersion"] = "v1";
  list["items"] = Json::array();
  for (const PrintedObject& o : objects) list["items"].push_back(o.json);
  list["kind"] = "List";
  list["metadata"] = Json::object({{"resourceVersion", ""}});
  return list;
}

std::string FormatYamlList(const std::vector<std::string>& item_yamls) {
  std::string out = "apiVersion: v1\n";
  out += item_yamls.empty() ? "items: []\n" : "items:\n";
  for (absl::string_view yaml : item_yamls) {
    if (absl::EndsWith(yaml, "\n")) yaml.remove_suffix(1);
    bool first = true;
    for (absl::string_view line : absl::StrSplit(yaml, '\n')) {
      absl::StrAppend(&out, first ? "- " : (line.empty() ? "" : "  "), line, "\n");
      first = false;
    }
  }
  out += "kind: List\nmetadata:\n  resourceVersion: \"\"\n";
  return out;
}

std::string FormatObjects(const ResourceType& type, const std::vector<PrintedObject>& objects,
                          const PrintOptions& options, bool as_list, bool with_header) {
  const OutputFormat& format = options.format;
  const bool header = with_header && !options.no_headers;
  switch (format.kind) {
    case OutputKind::kTable:
    case OutputKind::kWide:
      return FormatTableRows(type, objects, options, header);
    case OutputKind::kCustomColumns:
      return FormatCustomColumns(format.columns, objects, header);
    case OutputKind::kName: {
      std::string out;
      for (const PrintedObject& o : objects) out += ObjectName(type, o.json) + "\n";
      return out;
    }
    case OutputKind::kJsonPath: {
      if (as_list) return format.jsonpath->Execute(ListJson(objects));
      std::string out;
      for (const PrintedObject& o : objects) out += format.jsonpath->Execute(o.json);
      return out;
    }
    case OutputKind::kJson:
      return as_list ? JsonText(ListJson(objects)) : FormatEach(objects, OutputKind::kJson);
    case OutputKind::kYaml: {
      if (!as_list) return FormatEach(objects, OutputKind::kYaml);
      std::vector<std::string> yamls;
      for (const PrintedObject& o : objects) yamls.push_back(MessageToYaml(*o.message));
      return FormatYamlList(yamls);
    }
  }
  return "";
}

}  // namespace kaito::ctl
