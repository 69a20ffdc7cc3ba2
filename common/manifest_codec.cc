#include "common/manifest_codec.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

enum class PlainKind { kNull, kBool, kInt, kFloat, kString };

// How YAML (1.1, as Kubernetes' YAML reader) resolves a plain scalar.
PlainKind ClassifyPlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return PlainKind::kNull;
  static const char* kBools[] = {"true", "True", "TRUE", "false", "False", "FALSE",
                                 "yes",  "Yes",  "YES",  "no",    "No",    "NO",
                                 "on",   "On",   "ON",   "off",   "Off",   "OFF"};
  for (const char* b : kBools) {
    if (s == b) return PlainKind::kBool;
  }
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i < s.size()) {
    bool digits = true;
    for (size_t j = i; j < s.size(); ++j) digits &= absl::ascii_isdigit(s[j]) || s[j] == '_';
    if (digits) return PlainKind::kInt;
    if (s.size() > i + 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'o')) {
      return PlainKind::kInt;
    }
    char* end = nullptr;
    errno = 0;
    std::strtod(s.c_str(), &end);
    if (end == s.c_str() + s.size() && s.find_first_of("0123456789") != std::string::npos) {
      return PlainKind::kFloat;
    }
  }
  static const char* kSpecial[] = {".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN"};
  for (const char* f : kSpecial) {
    if (s == f) return PlainKind::kFloat;
  }
  return PlainKind::kString;
}

bool IsPlain(const YAML::Node& node) { return node.Tag() == "?"; }

bool IsYamlNull(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return true;
  return node.IsScalar() && IsPlain(node) && ClassifyPlain(node.Scalar()) == PlainKind::kNull;
}

const char* KindName(const YAML::Node& node) {
  if (node.IsMap()) return "object";
  if (node.IsSequence()) return "array";
  if (IsYamlNull(node)) return "null";
  if (!IsPlain(node)) return "string";
  switch (ClassifyPlain(node.Scalar())) {
    case PlainKind::kBool:
      return "boolean";
    case PlainKind::kInt:
    case PlainKind::kFloat:
      return "number";
    default:
      return "string";
  }
}

std::string Join(const std::string& path, const std::string& field) {
  return path.empty() ? field : path + "." + field;
}

class Converter {
 public:
  explicit Converter(FieldErrors& errors) : errors_(errors) {}

  void ToMessage(const YAML::Node& node, Message* msg, const std::string& path, int depth) {
    if (!Enter(path, depth)) return;
    const Descriptor* d = msg->GetDescriptor();
    if (d->full_name() == "google.protobuf.Struct") {
      ToStruct(node, static_cast<google::protobuf::Struct*>(msg), path, depth);
      return;
    }
    if (d->full_name() == "google.protobuf.Value") {
      ToValue(node, static_cast<google::protobuf::Value*>(msg), path, depth);
      return;
    }
    if (d->full_name() == "google.protobuf.Timestamp") {
      if (!node.IsScalar()) return TypeError(path, "string (RFC 3339 time)", node);
      if (!google::protobuf::util::TimeUtil::FromString(
              node.Scalar(), static_cast<google::protobuf::Timestamp*>(msg))) {
        errors_.Add(path, "Invalid value: \"" + node.Scalar() + "\": not an RFC 3339 time");
      }
      return;
    }
    if (!node.IsMap()) return TypeError(path, "object", node);
    const Reflection* r = msg->GetReflection();
    for (auto it = node.begin(); it != node.end(); ++it) {
      // yaml-cpp's iterator yields a temporary pair: copy the nodes out of it.
      const YAML::Node key_node = it->first;
      if (!key_node.IsScalar()) {
        errors_.Add(path, "field names must be strings");
        continue;
      }
      const std::string key = key_node.Scalar();
      const FieldDescriptor* f = FindField(d, key);
      const std::string fpath = Join(path, key);
      if (f == nullptr) {
        errors_.Add(path.empty() ? key : fpath, "unknown field \"" + key + "\"");
        continue;
      }
      const YAML::Node value = it->second;
      if (IsYamlNull(value)) continue;  // null means "not set", as in Kubernetes.
      if (f->is_map()) {
        ToMap(value, msg, f, fpath, depth + 1);
      } else if (f->is_repeated()) {
        if (!value.IsSequence()) {
          TypeError(fpath, "array", value);
          continue;
        }
        for (size_t i = 0; i < value.size(); ++i) {
          const std::string ipath = fpath + "[" + std::to_string(i) + "]";
          if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            ToMessage(value[i], r->AddMessage(msg, f), ipath, depth + 1);
          } else {
            SetScalar(value[i], msg, f, ipath, /*repeated=*/true);
          }
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        ToMessage(value, r->MutableMessage(msg, f), fpath, depth + 1);
      } else {
        SetScalar(value, msg, f, fpath, /*repeated=*/false);
      }
    }
  }

 private:
  bool Enter(const std::string& path, int depth) {
    if (++nodes_ > kMaxManifestNodes) {
      if (nodes_ == kMaxManifestNodes + 1) {
        errors_.Add(path, "document is too large (more than " +
                              std::to_string(kMaxManifestNodes) + " nodes)");
      }
      return false;
    }
    if (depth > kMaxManifestDepth) {
      errors_.Add(path, "nesting is deeper than " + std::to_string(kMaxManifestDepth));
      return false;
    }
    return true;
  }

  static const FieldDescriptor* FindField(const Descriptor* d, const std::string& key) {
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->json_name() == key) return d->field(i);
    }
    return nullptr;
  }

  void TypeError(const std::string& path, const std::string& want, const YAML::Node& got) {
    errors_.Add(path, "Invalid type: expected " + want + ", got " + KindName(got));
  }

  void ToMap(const YAML::Node& node, Message* msg, const FieldDescriptor* f,
             const std::string& path, int depth) {
    if (!node.IsMap()) return TypeError(path, "object", node);
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!Enter(path, depth)) return;
      const YAML::Node key_node = it->first;
      if (!key_node.IsScalar()) {
        errors_.Add(path, "map keys must be strings");
        continue;
      }
      const std::string key = key_node.Scalar();
      const std::string kpath = path + "[" + key + "]";
      Message* entry = msg->GetReflection()->AddMessage(msg, f);
      entry->GetReflection()->SetString(entry, key_field, key);
      const YAML::Node value = it->second;
      if (IsYamlNull(value)) {
        if (value_field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
          TypeError(kpath, "a value", value);
        }
        continue;
      }
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        ToMessage(value, entry->GetReflection()->MutableMessage(entry, value_field), kpath,
                  depth + 1);
      } else {
        SetScalar(value, entry, value_field, kpath, false);
      }
    }
  }

  void SetScalar(const YAML::Node& node, Message* msg, const FieldDescriptor* f,
                 const std::string& path, bool repeated) {
    const Reflection* r = msg->GetReflection();
    if (!node.IsScalar()) {
      return TypeError(path, f->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? "string" : "scalar",
                       node);
    }
    const std::string& s = node.Scalar();
    const PlainKind kind = IsPlain(node) ? ClassifyPlain(s) : PlainKind::kString;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        if (kind != PlainKind::kString) return TypeError(path, "string", node);
        std::string value = s;
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          std::string decoded;
          if (!absl::Base64Unescape(s, &decoded)) {
            errors_.Add(path, "Invalid value: illegal base64 data");
            return;
          }
          value = std::move(decoded);
        }
        repeated ? r->AddString(msg, f, std::move(value)) : r->SetString(msg, f, std::move(value));
        return;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        if (kind != PlainKind::kBool) return TypeError(path, "boolean", node);
        const std::string lower = absl::AsciiStrToLower(s);
        const bool value = lower == "true" || lower == "yes" || lower == "on";
        repeated ? r->AddBool(msg, f, value) : r->SetBool(msg, f, value);
        return;
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        if (kind != PlainKind::kInt) return TypeError(path, "integer", node);
        errno = 0;
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 0);
        const bool is32 = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                          f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32;
        const bool is_unsigned = f->cpp_type() == FieldDescriptor::CPPTYPE_UINT32 ||
                                 f->cpp_type() == FieldDescriptor::CPPTYPE_UINT64;
        if (errno != 0 || *end != '\0' || (is_unsigned && v < 0) ||
            (is32 && (v > std::numeric_limits<int32_t>::max() ||
                      v < std::numeric_limits<int32_t>::min()))) {
          errors_.Add(path, "Invalid value: " + s + ": out of range");
          return;
        }
        switch (f->cpp_type()) {
          case FieldDescriptor::CPPTYPE_INT32:
            repeated ? r->AddInt32(msg, f, v) : r->SetInt32(msg, f, v);
            break;
          case FieldDescriptor::CPPTYPE_INT64:
            repeated ? r->AddInt64(msg, f, v) : r->SetInt64(msg, f, v);
            break;
          case FieldDescriptor::CPPTYPE_UINT32:
            repeated ? r->AddUInt32(msg, f, v) : r->SetUInt32(msg, f, v);
            break;
          default:
            repeated ? r->AddUInt64(msg, f, v) : r->SetUInt64(msg, f, v);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        if (kind != PlainKind::kInt && kind != PlainKind::kFloat) {
          return TypeError(path, "number", node);
        }
        const double v = std::strtod(s.c_str(), nullptr);
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
          repeated ? r->AddFloat(msg, f, static_cast<float>(v))
                   : r->SetFloat(msg, f, static_cast<float>(v));
        } else {
          repeated ? r->AddDouble(msg, f, v) : r->SetDouble(msg, f, v);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* value = f->enum_type()->FindValueByName(s);
        if (value == nullptr || value->number() == 0) {
          std::string supported;
          for (int i = 1; i < f->enum_type()->value_count(); ++i) {
            absl::StrAppend(&supported, i > 1 ? ", " : "", "\"",
                            f->enum_type()->value(i)->name(), "\"");
          }
          errors_.Add(path, "Unsupported value: \"" + s + "\": supported values: " + supported);
          return;
        }
        repeated ? r->AddEnum(msg, f, value) : r->SetEnum(msg, f, value);
        return;
      }
      default:
        errors_.Add(path, "unsupported field type");
    }
  }

  void ToStruct(const YAML::Node& node, google::protobuf::Struct* s, const std::string& path,
                int depth) {
    if (!node.IsMap()) return TypeError(path, "object", node);
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node key_node = it->first;
      const YAML::Node value = it->second;
      if (!key_node.IsScalar()) {
        errors_.Add(path, "field names must be strings");
        continue;
      }
      const std::string key = key_node.Scalar();
      ToValue(value, &(*s->mutable_fields())[key], Join(path, key), depth + 1);
    }
  }

  void ToValue(const YAML::Node& node, google::protobuf::Value* v, const std::string& path,
               int depth) {
    if (!Enter(path, depth)) return;
    if (node.IsMap()) return ToStruct(node, v->mutable_struct_value(), path, depth);
    if (node.IsSequence()) {
      auto* list = v->mutable_list_value();
      for (size_t i = 0; i < node.size(); ++i) {
        ToValue(node[i], list->add_values(), path + "[" + std::to_string(i) + "]", depth + 1);
      }
      return;
    }
    if (IsYamlNull(node)) {
      v->set_null_value(google::protobuf::NULL_VALUE);
      return;
    }
    const std::string& s = node.Scalar();
    switch (IsPlain(node) ? ClassifyPlain(s) : PlainKind::kString) {
      case PlainKind::kBool: {
        const std::string lower = absl::AsciiStrToLower(s);
        v->set_bool_value(lower == "true" || lower == "yes" || lower == "on");
        return;
      }
      case PlainKind::kInt:
      case PlainKind::kFloat:
        v->set_number_value(std::strtod(s.c_str(), nullptr));
        return;
      default:
        v->set_string_value(s);
    }
  }

  FieldErrors& errors_;
  int64_t nodes_ = 0;
};

std::string ScalarOrEmpty(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v.IsDefined() && v.IsScalar() ? v.Scalar() : "";
}

void EmitJson(YAML::Emitter& out, const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::object:
      out << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        out << YAML::Key << it.key() << YAML::Value;
        EmitJson(out, it.value());
      }
      out << YAML::EndMap;
      return;
    case nlohmann::ordered_json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& e : j) EmitJson(out, e);
      out << YAML::EndSeq;
      return;
    case nlohmann::ordered_json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      const bool one_final_newline =
          s.size() >= 2 && s.back() == '\n' && s[s.size() - 2] != '\n';
      if (one_final_newline && s[0] != ' ' && s.find_first_of("\t\r") == std::string::npos) {
        // Block literal (`|`) keeps exactly one final newline.
        out << YAML::Literal << s.substr(0, s.size() - 1);
      } else if (ClassifyPlain(s) != PlainKind::kString || s.find_first_of(":#{}[],&*!|>'\"%@`\n\t\r\\") != std::string::npos ||
                 s.front() == ' ' || s.back() == ' ' || s.front() == '-' || s.front() == '?') {
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      return;
    }
    case nlohmann::ordered_json::value_t::boolean:
      out << (j.get<bool>() ? "true" : "false");
      return;
    case nlohmann::ordered_json::value_t::null:
      out << YAML::Null;
      return;
    default:
      out << j.dump();
  }
}

}  // namespace

std::string ManifestDocument::Describe() const {
  std::string s = "document " + std::to_string(index);
  if (!kind.empty()) {
    s += " (" + kind;
    if (!name.empty()) s += " \"" + name + "\"";
    s += ")";
  }
  return s;
}

void YamlToMessage(const YAML::Node& node, google::protobuf::Message* message,
                   FieldErrors& errors) {
  Converter(errors).ToMessage(node, message, "", 0);
}

absl::StatusOr<std::vector<ManifestDocument>> ParseManifests(const std::string& text) {
  if (text.size() > kMaxManifestBytes) {
    return absl::InvalidArgumentError("manifest is larger than " +
                                      std::to_string(kMaxManifestBytes) + " bytes");
  }
  std::vector<YAML::Node> nodes;
  try {
    nodes = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError("malformed YAML at line " + std::to_string(e.mark.line + 1) +
                                      ", column " + std::to_string(e.mark.column + 1) + ": " +
                                      e.msg);
  }
  std::vector<ManifestDocument> docs;
  int index = 0;
  for (const YAML::Node& node : nodes) {
    ++index;
    if (IsYamlNull(node)) continue;
    ManifestDocument doc;
    doc.index = index;
    if (!node.IsMap()) {
      doc.status = absl::InvalidArgumentError(doc.Describe() + ": expected a mapping at the top");
      docs.push_back(std::move(doc));
      continue;
    }
    doc.api_version = ScalarOrEmpty(node, "apiVersion");
    doc.kind = ScalarOrEmpty(node, "kind");
    // A missing key of a const node is an invalid node: ask IsDefined before its type.
    if (const YAML::Node meta = node["metadata"]; meta.IsDefined() && meta.IsMap()) {
      doc.name = ScalarOrEmpty(meta, "name");
      doc.namespace_ = ScalarOrEmpty(meta, "namespace");
    }
    if (doc.kind.empty() || doc.api_version.empty()) {
      doc.status = absl::InvalidArgumentError(doc.Describe() + ": apiVersion and kind are required");
      docs.push_back(std::move(doc));
      continue;
    }
    std::unique_ptr<google::protobuf::Message> object;
    if (doc.kind == "Workspace" &&
        (doc.api_version == "kaito.sh/v1beta1" || doc.api_version == "kaito.sh/v1alpha1")) {
      object = std::make_unique<v1::Workspace>();
    } else if (doc.kind == "ConfigMap" && doc.api_version == "v1") {
      object = std::make_unique<v1::ConfigMap>();
    } else if (doc.kind == "Secret" && doc.api_version == "v1") {
      object = std::make_unique<v1::Secret>();
    } else {
      doc.status = absl::UnimplementedError(
          doc.Describe() + ": kind " + doc.kind + " (" + doc.api_version +
          ") is not supported; supported: Workspace (kaito.sh/v1beta1, kaito.sh/v1alpha1), "
          "ConfigMap (v1), Secret (v1)");
      docs.push_back(std::move(doc));
      continue;
    }
    FieldErrors errors;
    YamlToMessage(node, object.get(), errors);
    if (!errors.empty()) {
      doc.status = errors.ToStatus(doc.Describe());
    } else {
      doc.object = std::move(object);
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

namespace {

bool Is64BitInteger(const google::protobuf::FieldDescriptor* f) {
  using FD = google::protobuf::FieldDescriptor;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT64:
    case FD::CPPTYPE_UINT64:
      return true;
    default:
      return false;
  }
}

nlohmann::ordered_json AsNumber(const nlohmann::ordered_json& v, bool is_unsigned) {
  if (!v.is_string()) return v;
  const std::string& text = v.get_ref<const std::string&>();
  char* end = nullptr;
  errno = 0;
  if (is_unsigned) {
    const unsigned long long n = std::strtoull(text.c_str(), &end, 10);
    if (errno == 0 && end != text.c_str() && *end == '\0') return nlohmann::ordered_json(n);
  } else {
    const long long n = std::strtoll(text.c_str(), &end, 10);
    if (errno == 0 && end != text.c_str() && *end == '\0') return nlohmann::ordered_json(n);
  }
  return v;
}

// Proto3 JSON prints 64-bit integers as strings; Kubernetes (and our codec, which reads
// manifests with Kubernetes' strictness) has them as numbers. Rewrites them, by the
// message's descriptor, so that what `get -o yaml|json` prints applies again.
void Int64sAsNumbers(nlohmann::ordered_json& j, const google::protobuf::Descriptor* d) {
  if (!j.is_object()) return;
  // Well-known types print as scalars or free-form JSON: nothing of ours inside.
  if (d->file()->package() == "google.protobuf") return;
  using FD = google::protobuf::FieldDescriptor;
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    auto it = j.find(f->json_name());
    if (it == j.end()) continue;
    nlohmann::ordered_json& v = *it;
    const bool is_unsigned = f->cpp_type() == FD::CPPTYPE_UINT64;
    if (f->is_map()) {
      const FD* value = f->message_type()->map_value();
      if (!v.is_object()) continue;
      for (auto& [k, item] : v.items()) {
        if (Is64BitInteger(value)) item = AsNumber(item, value->cpp_type() == FD::CPPTYPE_UINT64);
        if (value->cpp_type() == FD::CPPTYPE_MESSAGE) Int64sAsNumbers(item, value->message_type());
      }
    } else if (f->is_repeated() && v.is_array()) {
      for (auto& item : v) {
        if (Is64BitInteger(f)) item = AsNumber(item, is_unsigned);
        if (f->cpp_type() == FD::CPPTYPE_MESSAGE) Int64sAsNumbers(item, f->message_type());
      }
    } else if (Is64BitInteger(f)) {
      v = AsNumber(v, is_unsigned);
    } else if (f->cpp_type() == FD::CPPTYPE_MESSAGE) {
      Int64sAsNumbers(v, f->message_type());
    }
  }
}

}  // namespace

std::string MessageToJson(const google::protobuf::Message& message, bool pretty) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(out, nullptr, false);
  if (j.is_discarded()) return out;
  Int64sAsNumbers(j, message.GetDescriptor());
  return pretty ? j.dump(2) : j.dump();
}

std::string MessageToYaml(const google::protobuf::Message& message) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(MessageToJson(message, false), nullptr, false);
  YAML::Emitter out;
  EmitJson(out, j);
  return std::string(out.c_str()) + "\n";
}

}  // namespace kaito
