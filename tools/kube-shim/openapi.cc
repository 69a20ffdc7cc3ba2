#include "tools/kube-shim/openapi.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/version.h"
#include "tools/kaitoctl/explain.h"
#include "tools/kube-shim/resources.h"

namespace kaito::shim {
namespace {

using json = nlohmann::ordered_json;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// Nesting deeper than any of our kinds has: a guard against a recursive message.
constexpr int kMaxDepth = 16;

// The proto comment of a field or message, where descriptors carry source info.
template <typename D>
std::string Comment(const D* d) {
  google::protobuf::SourceLocation where;
  if (!d->GetSourceLocation(&where)) return "";
  // Each comment line without the space after its `//`.
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(where.leading_comments, '\n')) {
    lines.emplace_back(absl::StripAsciiWhitespace(line));
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  return absl::StrJoin(lines, "\n");
}

json MessageSchemaAt(const Descriptor* message, int depth);

json ScalarSchema(const FieldDescriptor* f, int depth) {
  switch (f->type()) {
    case FieldDescriptor::TYPE_STRING:
      return {{"type", "string"}};
    case FieldDescriptor::TYPE_BYTES:
      return {{"type", "string"}, {"format", "byte"}};
    case FieldDescriptor::TYPE_BOOL:
      return {{"type", "boolean"}};
    case FieldDescriptor::TYPE_DOUBLE:
    case FieldDescriptor::TYPE_FLOAT:
      return {{"type", "number"}, {"format", "double"}};
    case FieldDescriptor::TYPE_INT64:
    case FieldDescriptor::TYPE_SINT64:
    case FieldDescriptor::TYPE_SFIXED64:
    case FieldDescriptor::TYPE_UINT64:
    case FieldDescriptor::TYPE_FIXED64:
      return {{"type", "integer"}, {"format", "int64"}};
    case FieldDescriptor::TYPE_ENUM: {
      json values = json::array();
      for (int i = 0; i < f->enum_type()->value_count(); ++i) {
        values.push_back(f->enum_type()->value(i)->name());
      }
      return {{"type", "string"}, {"enum", values}};
    }
    case FieldDescriptor::TYPE_MESSAGE:
    case FieldDescriptor::TYPE_GROUP:
      return MessageSchemaAt(f->message_type(), depth + 1);
    default:
      return {{"type", "integer"}, {"format", "int32"}};
  }
}

json FieldSchema(const FieldDescriptor* f, int depth) {
  json schema;
  if (f->is_map()) {
    schema = {{"type", "object"},
              {"additionalProperties", ScalarSchema(f->message_type()->map_value(), depth)}};
  } else if (f->is_repeated()) {
    schema = {{"type", "array"}, {"items", ScalarSchema(f, depth)}};
  } else {
    schema = ScalarSchema(f, depth);
  }
  std::string doc = Comment(f);
  if (!doc.empty()) schema["description"] = doc;
  return schema;
}

json MessageSchemaAt(const Descriptor* message, int depth) {
  const std::string& name = message->full_name();
  if (name == "google.protobuf.Timestamp") return {{"type", "string"}, {"format", "date-time"}};
  if (name == "google.protobuf.Struct") {
    return {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}};
  }
  if (name == "google.protobuf.Value" || name == "google.protobuf.ListValue" ||
      depth > kMaxDepth) {
    return {{"x-kubernetes-preserve-unknown-fields", true}};
  }
  json properties = json::object();
  for (int i = 0; i < message->field_count(); ++i) {
    const FieldDescriptor* f = message->field(i);
    properties[f->json_name()] = FieldSchema(f, depth);
  }
  json schema = {{"type", "object"}, {"properties", std::move(properties)}};
  std::string doc = Comment(message);
  if (!doc.empty()) schema["description"] = doc;
  return schema;
}

// Kubernetes' schema names: the group reversed ("sh.kaito"), or io.k8s.api.core for core.
std::string SchemaName(const ResourceType& r, const std::string& version) {
  if (r.group.empty()) return absl::StrCat("io.k8s.api.core.", version, ".", r.kind);
  std::vector<std::string> parts = absl::StrSplit(r.group, '.');
  std::reverse(parts.begin(), parts.end());
  return absl::StrCat(absl::StrJoin(parts, "."), ".", version, ".", r.kind);
}

json Gvk(const ResourceType& r, const std::string& version) {
  return {{"group", r.group}, {"version", version}, {"kind", r.kind}};
}

json KindSchema(const ResourceType& r, const std::string& version) {
  // The same message from the descriptors compiled with their comments, for descriptions.
  const Descriptor* documented =
      ctl::DocumentedApiPool().FindMessageTypeByName(r.descriptor->full_name());
  json schema = MessageSchema(documented != nullptr ? documented : r.descriptor);
  schema["x-kubernetes-group-version-kind"] = json::array({Gvk(r, version)});
  return schema;
}

json ListSchema(const ResourceType& r, const std::string& version, const std::string& ref) {
  return {{"type", "object"},
          {"description", r.kind + "List is a list of " + r.kind + "s."},
          {"required", {"items"}},
          {"properties",
           {{"apiVersion", {{"type", "string"}}},
            {"kind", {{"type", "string"}}},
            {"metadata", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}},
            {"items", {{"type", "array"}, {"items", {{"$ref", ref}}}}}}},
          {"x-kubernetes-group-version-kind",
           json::array({{{"group", r.group}, {"version", version}, {"kind", r.kind + "List"}}})}};
}

json QueryParameter(const char* name, const char* description) {
  return {{"name", name},
          {"in", "query"},
          {"description", description},
          {"schema", {{"type", "string"}}},
          {"uniqueItems", true}};
}

json Operation(const ResourceType& r, const std::string& version, const std::string& action,
               const std::string& ref, json parameters, json request_types = nullptr) {
  json op = {{"operationId", action + r.kind},
             {"parameters", std::move(parameters)},
             {"responses",
              {{"200",
                {{"description", "OK"},
                 {"content", {{"application/json", {{"schema", {{"$ref", ref}}}}}}}}}}},
             {"x-kubernetes-action", action},
             {"x-kubernetes-group-version-kind", Gvk(r, version)}};
  if (!request_types.is_null()) {
    json content = json::object();
    for (const auto& type : request_types) {
      content[type.get<std::string>()] = {{"schema", {{"$ref", ref}}}};
    }
    op["requestBody"] = {{"content", std::move(content)}, {"required", true}};
  }
  return op;
}

json WriteParameters() {
  return json::array(
      {QueryParameter("dryRun", "When present (All), the request is validated and not stored."),
       QueryParameter("fieldManager", "A name for the actor making the change."),
       QueryParameter("fieldValidation",
                      "How unknown and duplicate fields are treated. The shim is always "
                      "Strict: such a field is an error that names it.")});
}

json Paths(const ResourceType& r, const std::string& version, const std::string& ref,
           const std::string& list_ref) {
  const std::string base = r.group.empty() ? "/api/" + version : "/apis/" + r.group + "/" + version;
  const std::string collection = base + "/namespaces/{namespace}/" + r.plural;
  json patch_types = {"application/json-patch+json", "application/merge-patch+json",
                      "application/apply-patch+yaml"};
  if (r.group.empty()) patch_types.push_back("application/strategic-merge-patch+json");
  json list_params = json::array(
      {QueryParameter("labelSelector", "A label selector."),
       QueryParameter("fieldSelector", "metadata.name and metadata.namespace."),
       QueryParameter("limit", "The most items in one page."),
       QueryParameter("continue", "The token of the next page."),
       QueryParameter("watch", "Stream changes."),
       QueryParameter("resourceVersion", "Where a watch starts.")});
  json paths = json::object();
  paths[collection] = {{"get", Operation(r, version, "list", list_ref, list_params)},
                       {"post", Operation(r, version, "post", ref, WriteParameters(),
                                          {"application/json"})},
                       {"delete", Operation(r, version, "deletecollection", list_ref,
                                            list_params)}};
  paths[collection + "/{name}"] = {
      {"get", Operation(r, version, "get", ref, json::array())},
      {"put", Operation(r, version, "put", ref, WriteParameters(), {"application/json"})},
      {"patch", Operation(r, version, "patch", ref, WriteParameters(), patch_types)},
      {"delete", Operation(r, version, "delete", ref, json::array())}};
  if (r.has_status) {
    paths[collection + "/{name}/status"] = {
        {"get", Operation(r, version, "get", ref, json::array())}};
  }
  return paths;
}

json Info() {
  return {{"title", "Kaito (kaito-kube-shim)"}, {"version", Version()}};
}

std::string GroupVersionPath(const ResourceType& r, const std::string& version) {
  return r.group.empty() ? "api/" + version : "apis/" + r.group + "/" + version;
}

}  // namespace

json MessageSchema(const Descriptor* message) { return MessageSchemaAt(message, 0); }

json OpenApiV2() {
  json definitions = json::object();
  for (const auto& r : ServedResources()) {
    for (const auto& v : r.versions) {
      const std::string name = SchemaName(r, v);
      definitions[name] = KindSchema(r, v);
      definitions[name + "List"] = ListSchema(r, v, "#/definitions/" + name);
    }
  }
  return {{"swagger", "2.0"}, {"info", Info()}, {"paths", json::object()},
          {"definitions", std::move(definitions)}};
}

json OpenApiV3Index() {
  json paths = json::object();
  std::set<std::string> seen;
  for (const auto& r : ServedResources()) {
    for (const auto& v : r.versions) {
      const std::string path = GroupVersionPath(r, v);
      if (!seen.insert(path).second) continue;
      // The hash names the document's content; it changes only with the binary.
      paths[path] = {{"serverRelativeURL",
                      "/openapi/v3/" + path + "?hash=" + std::string(Version())}};
    }
  }
  return {{"paths", std::move(paths)}};
}

std::optional<json> OpenApiV3(const std::string& group_version) {
  json schemas = json::object();
  json paths = json::object();
  for (const auto& r : ServedResources()) {
    for (const auto& v : r.versions) {
      if (GroupVersionPath(r, v) != group_version) continue;
      const std::string name = SchemaName(r, v);
      schemas[name] = KindSchema(r, v);
      schemas[name + "List"] = ListSchema(r, v, "#/components/schemas/" + name);
      json kind_paths =
          Paths(r, v, "#/components/schemas/" + name, "#/components/schemas/" + name + "List");
      for (auto& [path, item] : kind_paths.items()) paths[path] = item;
    }
  }
  if (schemas.empty()) return std::nullopt;
  return json{{"openapi", "3.0.0"},
              {"info", Info()},
              {"paths", std::move(paths)},
              {"components", {{"schemas", std::move(schemas)}}}};
}

}  // namespace kaito::shim
