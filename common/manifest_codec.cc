#include "common/manifest_codec.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/message_json.h"
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

// How the converter reads a document tree: YAML nodes (manifests) or JSON values (the
// shim's request bodies, decoded without a trip through YAML text). A JSON value's type is
// its YAML resolution: strings are quoted scalars, numbers, booleans and null plain ones.
struct YamlTree {
  using Node = YAML::Node;
  static bool IsMap(const Node& n) { return n.IsMap(); }
  static bool IsSequence(const Node& n) { return n.IsSequence(); }
  static bool IsScalar(const Node& n) { return n.IsScalar(); }
  static bool IsNull(const Node& n) { return IsYamlNull(n); }
  static const std::string& Scalar(const Node& n) { return n.Scalar(); }
  static PlainKind Kind(const Node& n) {
    return IsPlain(n) ? ClassifyPlain(n.Scalar()) : PlainKind::kString;
  }
  static const char* TypeName(const Node& n) { return KindName(n); }
  static size_t Size(const Node& n) { return n.size(); }
  static Node At(const Node& n, size_t i) { return n[i]; }
  // Calls `f(key, value)` for each entry while it returns true; `key` is null for a key
  // that is not a scalar.
  template <typename F>
  static void ForEach(const Node& n, F f) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      // yaml-cpp's iterator yields a temporary pair: copy the nodes out of it.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!f(key.IsScalar() ? &key.Scalar() : nullptr, value)) return;
    }
  }
};

struct JsonTree {
  using Node = nlohmann::ordered_json;
  static bool IsMap(const Node& n) { return n.is_object(); }
  static bool IsSequence(const Node& n) { return n.is_array(); }
  static bool IsScalar(const Node& n) { return n.is_primitive(); }
  static bool IsNull(const Node& n) { return n.is_null(); }
  static std::string Scalar(const Node& n) {
    if (n.is_string()) return n.get_ref<const std::string&>();
    if (n.is_null()) return "";
    return n.dump();
  }
  static PlainKind Kind(const Node& n) {
    switch (n.type()) {
      case Node::value_t::null:
        return PlainKind::kNull;
      case Node::value_t::boolean:
        return PlainKind::kBool;
      case Node::value_t::number_integer:
      case Node::value_t::number_unsigned:
        return PlainKind::kInt;
      case Node::value_t::number_float:
        return PlainKind::kFloat;
      default:
        return PlainKind::kString;
    }
  }
  static const char* TypeName(const Node& n) {
    if (n.is_object()) return "object";
    if (n.is_array()) return "array";
    if (n.is_null()) return "null";
    if (n.is_boolean()) return "boolean";
    if (n.is_number()) return "number";
    return "string";
  }
  static size_t Size(const Node& n) { return n.size(); }
  static const Node& At(const Node& n, size_t i) { return n[i]; }
  template <typename F>
  static void ForEach(const Node& n, F f) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!f(&it.key(), it.value())) return;
    }
  }
};

template <typename Tree>
class Converter {
  using Node = typename Tree::Node;

 public:
  explicit Converter(FieldErrors& errors) : errors_(errors) {}

  void ToMessage(const Node& node, Message* msg, const std::string& path, int depth) {
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
      if (!Tree::IsScalar(node)) return TypeError(path, "string (RFC 3339 time)", node);
      const std::string text = Tree::Scalar(node);
      if (!google::protobuf::util::TimeUtil::FromString(
              text, static_cast<google::protobuf::Timestamp*>(msg))) {
        AddError(path, "Invalid value: \"" + text + "\": not an RFC 3339 time");
      }
      return;
    }
    if (!Tree::IsMap(node)) return TypeError(path, "object", node);
    const Reflection* r = msg->GetReflection();
    Tree::ForEach(node, [&](const std::string* key_text, const Node& value) {
      if (stopped_) return false;
      if (key_text == nullptr) {
        AddError(path, "field names must be strings");
        return true;
      }
      const std::string& key = *key_text;
      if (!IsValidUtf8(key)) {
        AddError(path, "field names must be valid UTF-8");
        return true;
      }
      const FieldDescriptor* f = FindField(d, key);
      const std::string fpath = Join(path, key);
      if (f == nullptr) {
        AddError(path.empty() ? key : fpath, "unknown field \"" + key + "\"");
        return true;
      }
      if (Tree::IsNull(value)) return true;  // null means "not set", as in Kubernetes.
      if (f->is_map()) {
        ToMap(value, msg, f, fpath, depth + 1);
      } else if (f->is_repeated()) {
        if (!Tree::IsSequence(value)) {
          TypeError(fpath, "array", value);
          return true;
        }
        for (size_t i = 0; i < Tree::Size(value) && !stopped_; ++i) {
          const std::string ipath = fpath + "[" + std::to_string(i) + "]";
          if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            ToMessage(Tree::At(value, i), r->AddMessage(msg, f), ipath, depth + 1);
          } else {
            SetScalar(Tree::At(value, i), msg, f, ipath, /*repeated=*/true);
          }
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        ToMessage(value, r->MutableMessage(msg, f), fpath, depth + 1);
      } else {
        SetScalar(value, msg, f, fpath, /*repeated=*/false);
      }
      return true;
    });
  }

 private:
  // Counts one node (a message, a list item, a map entry: two bytes at least when
  // encoded); false when conversion must stop.
  bool Enter(const std::string& path, int depth) {
    if (stopped_) return false;
    if (++nodes_ > kMaxManifestNodes) {
      return Stop(path, "document is too large (more than " + std::to_string(kMaxManifestNodes) +
                            " nodes)");
    }
    if (depth > kMaxManifestDepth) {
      AddError(path, "nesting is deeper than " + std::to_string(kMaxManifestDepth));
      return false;
    }
    return Charge(path, 2);
  }

  // Counts `bytes` of content towards `kMaxDocumentBytes`; false when conversion must stop.
  bool Charge(const std::string& path, size_t bytes) {
    if (stopped_) return false;
    bytes_ += bytes;
    if (bytes_ > kMaxDocumentBytes) {
      return Stop(path, "document is too large: its content, with YAML aliases expanded, "
                        "passes " + std::to_string(kMaxDocumentBytes) +
                        " bytes, the largest request the server accepts");
    }
    return true;
  }

  bool Stop(const std::string& path, std::string message) {
    errors_.Add(path, std::move(message));
    stopped_ = true;
    return false;
  }

  void AddError(const std::string& path, std::string message) {
    if (stopped_) return;
    errors_.Add(path, std::move(message));
    if (++error_count_ >= kMaxDocumentErrors) {
      Stop("", "too many errors (" + std::to_string(kMaxDocumentErrors) + "), conversion stopped");
    }
  }

  static const FieldDescriptor* FindField(const Descriptor* d, const std::string& key) {
    for (int i = 0; i < d->field_count(); ++i) {
      if (d->field(i)->json_name() == key) return d->field(i);
    }
    return nullptr;
  }

  void TypeError(const std::string& path, const std::string& want, const Node& got) {
    AddError(path, "Invalid type: expected " + want + ", got " + Tree::TypeName(got));
  }

  void ToMap(const Node& node, Message* msg, const FieldDescriptor* f, const std::string& path,
             int depth) {
    if (!Tree::IsMap(node)) return TypeError(path, "object", node);
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    Tree::ForEach(node, [&](const std::string* key_text, const Node& value) {
      if (!Enter(path, depth)) return false;
      if (key_text == nullptr) {
        AddError(path, "map keys must be strings");
        return true;
      }
      const std::string& key = *key_text;
      if (!IsValidUtf8(key)) {
        AddError(path, "map keys must be valid UTF-8");
        return true;
      }
      const std::string kpath = path + "[" + key + "]";
      if (!Charge(kpath, key.size())) return false;
      Message* entry = msg->GetReflection()->AddMessage(msg, f);
      entry->GetReflection()->SetString(entry, key_field, key);
      if (Tree::IsNull(value)) {
        if (value_field->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
          TypeError(kpath, "a value", value);
        }
        return true;
      }
      if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        ToMessage(value, entry->GetReflection()->MutableMessage(entry, value_field), kpath,
                  depth + 1);
      } else {
        SetScalar(value, entry, value_field, kpath, false);
      }
      return true;
    });
  }

  void SetScalar(const Node& node, Message* msg, const FieldDescriptor* f,
                 const std::string& path, bool repeated) {
    const Reflection* r = msg->GetReflection();
    // A repeated item takes a byte at least (a tag, or its packed value).
    if (repeated && !Charge(path, 1)) return;
    if (!Tree::IsScalar(node)) {
      return TypeError(path, f->cpp_type() == FieldDescriptor::CPPTYPE_STRING ? "string" : "scalar",
                       node);
    }
    const std::string s = Tree::Scalar(node);
    const PlainKind kind = Tree::Kind(node);
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        if (kind != PlainKind::kString) return TypeError(path, "string", node);
        if (f->type() == FieldDescriptor::TYPE_STRING && !IsValidUtf8(s)) {
          AddError(path, "Invalid value: not valid UTF-8");
          return;
        }
        std::string value = s;
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          std::string decoded;
          if (!absl::Base64Unescape(s, &decoded)) {
            AddError(path, "Invalid value: illegal base64 data");
            return;
          }
          value = std::move(decoded);
        }
        if (!Charge(path, value.size())) return;
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
          AddError(path, "Invalid value: " + s + ": out of range");
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
          AddError(path, "Unsupported value: \"" + s + "\": supported values: " + supported);
          return;
        }
        repeated ? r->AddEnum(msg, f, value) : r->SetEnum(msg, f, value);
        return;
      }
      default:
        AddError(path, "unsupported field type");
    }
  }

  void ToStruct(const Node& node, google::protobuf::Struct* s, const std::string& path,
                int depth) {
    if (!Tree::IsMap(node)) return TypeError(path, "object", node);
    Tree::ForEach(node, [&](const std::string* key_text, const Node& value) {
      if (stopped_) return false;
      if (key_text == nullptr) {
        AddError(path, "field names must be strings");
        return true;
      }
      const std::string& key = *key_text;
      if (!IsValidUtf8(key)) {
        AddError(path, "field names must be valid UTF-8");
        return true;
      }
      const std::string kpath = Join(path, key);
      if (!Charge(kpath, key.size())) return false;
      ToValue(value, &(*s->mutable_fields())[key], kpath, depth + 1);
      return true;
    });
  }

  void ToValue(const Node& node, google::protobuf::Value* v, const std::string& path,
               int depth) {
    if (!Enter(path, depth)) return;
    if (Tree::IsMap(node)) return ToStruct(node, v->mutable_struct_value(), path, depth);
    if (Tree::IsSequence(node)) {
      auto* list = v->mutable_list_value();
      for (size_t i = 0; i < Tree::Size(node) && !stopped_; ++i) {
        ToValue(Tree::At(node, i), list->add_values(), path + "[" + std::to_string(i) + "]", depth + 1);
      }
      return;
    }
    if (Tree::IsNull(node)) {
      v->set_null_value(google::protobuf::NULL_VALUE);
      return;
    }
    const std::string s = Tree::Scalar(node);
    switch (Tree::Kind(node)) {
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
        if (!IsValidUtf8(s)) {
          AddError(path, "Invalid value: not valid UTF-8");
          return;
        }
        if (!Charge(path, s.size())) return;
        v->set_string_value(s);
    }
  }

  FieldErrors& errors_;
  int64_t nodes_ = 0;
  size_t bytes_ = 0;
  size_t error_count_ = 0;
  // Set once a bound is passed: every later step returns at once.
  bool stopped_ = false;
};

std::string ScalarOrEmpty(const YAML::Node& node, const char* key) {
  const YAML::Node v = node[key];
  return v.IsDefined() && v.IsScalar() ? v.Scalar() : "";
}

// Whether `s` holds a character that YAML cannot carry as it is in a plain or block scalar:
// C0 controls but the line feed, DEL, and the YAML 1.1 line breaks NEL, LS and PS, and the
// byte order mark. yaml-cpp escapes them in a double-quoted scalar.
bool HasUnprintable(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c < 0x20 && c != '\n') || c == 0x7F) return true;
    const std::string_view rest = s.substr(i);
    if (rest.starts_with("\xC2\x85") || rest.starts_with("\xE2\x80\xA8") ||
        rest.starts_with("\xE2\x80\xA9") || rest.starts_with("\xEF\xBB\xBF")) {
      return true;
    }
  }
  return false;
}

// Whether `s` prints as a block literal (`|`) that reads back the same: it ends with
// exactly one line feed, holds only printable characters, and its first line with
// content does not start with a space (its indentation would be taken for the block's).
bool FitsBlockLiteral(const std::string& s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n') return false;
  if (HasUnprintable(s)) return false;
  const size_t first = s.find_first_not_of('\n');
  return first != std::string::npos && s[first] != ' ';
}

// YAML's simple keys stop at 1024 characters; a longer key takes the explicit `? key` form.
constexpr size_t kMaxSimpleKeyChars = 1024;

// The most characters `s` can take printed as a scalar: quoted, with `"` and `\` escaped,
// and any other byte as an escape of up to ten characters when it is not printable ASCII.
size_t PrintedSizeBound(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7F) return 10 * s.size() + 2;
  }
  return 2 * s.size() + 2;
}

void EmitJson(YAML::Emitter& out, const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::object:
      out << YAML::BeginMap;
      for (auto it = j.begin(); it != j.end(); ++it) {
        // A simple key is at most 1024 characters as printed (escapes included): a longer
        // one takes the explicit `? key` form, which has no limit.
        // (`Auto` for the others: yaml-cpp 0.7 would keep `LongKey` for later keys.)
        out << (PrintedSizeBound(it.key()) > kMaxSimpleKeyChars ? YAML::LongKey : YAML::Auto)
            << YAML::Key << it.key() << YAML::Value;
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
      if (FitsBlockLiteral(s)) {
        // Block literal (`|`) keeps exactly one final newline.
        out << YAML::Literal << s.substr(0, s.size() - 1);
      } else if (ClassifyPlain(s) != PlainKind::kString || HasUnprintable(s) ||
                 s.find_first_of(":#{}[],&*!|>'\"%@`\n\t\r\\") != std::string::npos ||
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

// Whether the scalar that yaml-cpp reported at `pos` (its node's start, before any anchor
// or tag) is a quoted scalar that never closes. yaml-cpp 0.7 runs such a scalar to the end
// of the input, so the rest of the stream becomes part of its value; its own rules for
// where a quoted scalar ends are the ones below (`\` escapes the next character in double
// quotes, `''` is a quote in single quotes). `*opening` receives the opening quote's
// offset. Anything else at `pos` (a block scalar, a plain one) is not ours to judge.
bool QuotedScalarIsUnterminated(std::string_view text, size_t pos, size_t* opening) {
  size_t i = pos;
  // Skip the node's properties: `&anchor`, `!tag`, `!<verbatim>`, with the blanks,
  // line breaks and comments between them and the scalar.
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (c == '!' && i + 1 < text.size() && text[i + 1] == '<') {
      while (i < text.size() && text[i] != '>') ++i;
      ++i;
    } else if (c == '&' || c == '!') {
      // Anchor names and tags end at a blank or a flow indicator.
      while (i < text.size() && std::string_view(" \t\r\n,[]{}").find(text[i]) ==
                                    std::string_view::npos) {
        ++i;
      }
    } else {
      break;
    }
  }
  if (i >= text.size() || (text[i] != '"' && text[i] != '\'')) return false;
  *opening = i;
  const char quote = text[i];
  for (size_t j = i + 1; j < text.size(); ++j) {
    if (quote == '"' && text[j] == '\\') {
      ++j;  // The escaped character, whatever it is.
    } else if (text[j] == quote) {
      if (quote == '\'' && j + 1 < text.size() && text[j + 1] == '\'') {
        ++j;  // '' is a single quote inside the scalar.
      } else {
        return false;
      }
    }
  }
  return true;
}

// Whether the document that yaml-cpp starts at `pos`, after the stream's first one, starts
// as YAML requires: at a `---` marker, or after a `...` that ended the document before
// (blank and comment lines between). yaml-cpp 0.7 also starts one where a block sequence
// at the left margin is followed by a mapping there ("- a\nkey: v"), which is not YAML.
bool StartsDocumentExplicitly(std::string_view text, size_t pos) {
  if (pos >= text.size() || text.substr(pos).starts_with("---")) return true;
  size_t end = pos;  // The text before `end` is what precedes the document.
  while (end > 0) {
    const size_t newline = text.rfind('\n', end - 1);
    const size_t start = newline == std::string_view::npos ? 0 : newline + 1;
    const std::string_view line = text.substr(start, end - start);
    const size_t first = line.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && line[first] != '#') {
      return line.starts_with("...") &&
             (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' ||
              line[3] == '\n');
    }
    if (start == 0) break;
    end = start - 1;  // Before the newline that ends the line above.
  }
  return false;
}

// 1-based line and column of byte `offset` in `text`.
std::pair<int, int> LineAndColumn(std::string_view text, size_t offset) {
  int line = 1;
  size_t line_start = 0;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(offset - line_start) + 1};
}

// The first pass over a stream: yaml-cpp's parse events, before it builds its nodes, for
// what yaml-cpp 0.7 accepts and Kubernetes' strict decoding refuses. Per document it
// finds mapping keys set twice in one mapping (scalar keys, and aliases of scalars); for
// the stream, a quoted scalar that never closes. It also counts documents, so that a
// parse error can name the one it is in. Used by one `ParseManifests` call on its thread.
class StrictnessChecker : public YAML::EventHandler {
 public:
  // Errors kept per document; the first ones say enough.
  static constexpr size_t kMaxDuplicateErrors = 16;

  explicit StrictnessChecker(std::string_view text) : text_(text) {
    // yaml-cpp's marks count from after a UTF-8 byte order mark. Other encodings (UTF-16,
    // UTF-32: a byte order mark or a zero byte in the first four, as yaml-cpp detects them)
    // are converted by yaml-cpp, so its offsets are not ours: skip the checks on the text.
    if (text_.starts_with("\xEF\xBB\xBF")) {
      offset_ = 3;
    } else if (text_.starts_with("\xFE\xFF") || text_.starts_with("\xFF\xFE") ||
               text_.substr(0, 4).find('\0') != std::string_view::npos) {
      offsets_known_ = false;
    }
  }

  // Documents begun so far; during a parse error, the 1-based index of the failing one.
  int documents() const { return documents_; }
  bool in_document() const { return in_document_; }
  // Problems of document `index` (1-based); empty when none.
  const FieldErrors& ErrorsOf(int index) const {
    static const FieldErrors kNone;
    const size_t i = static_cast<size_t>(index - 1);
    return i < errors_.size() ? errors_[i] : kNone;
  }
  // The first unterminated quoted scalar, or the place where yaml-cpp stopped making
  // progress, as a malformed-YAML error; OK when none. Once set, stop parsing.
  const absl::Status& stream_error() const { return stream_error_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    // yaml-cpp 0.7 can return empty documents forever without reading on (e.g. from ",a");
    // a document never legitimately starts where the one before it did.
    if (documents_ > 0 && mark.pos <= last_document_pos_ && stream_error_.ok()) {
      stream_error_ = absl::InvalidArgumentError(
          "document " + std::to_string(documents_) + ": malformed YAML at line " +
          std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1) +
          ": no YAML node can start here");
    }
    if (documents_ > 0 && offsets_known_ && mark.pos >= 0 && stream_error_.ok() &&
        !StartsDocumentExplicitly(text_, static_cast<size_t>(mark.pos) + offset_)) {
      stream_error_ = absl::InvalidArgumentError(
          "document " + std::to_string(documents_ + 1) + ": malformed YAML at line " +
          std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1) +
          ": a new document must start with ---");
    }
    last_document_pos_ = mark.pos;
    ++documents_;
    in_document_ = true;
    errors_.emplace_back();
    frames_.clear();
    scalar_anchors_.clear();
  }
  void OnDocumentEnd() override { in_document_ = false; }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark, std::nullopt); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = scalar_anchors_.find(anchor);
    Node(mark, it == scalar_anchors_.end() ? std::nullopt : std::optional(it->second));
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (tag != "?") CheckQuotes(mark);  // "?" is a plain scalar; others may be quoted.
    if (anchor != YAML::NullAnchor) scalar_anchors_[anchor] = value;
    Node(mark, value);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Open(mark, /*is_map=*/false);
  }
  void OnSequenceEnd() override { Close(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Open(mark, /*is_map=*/true);
  }
  void OnMapEnd() override { Close(); }

 private:
  // An open mapping or sequence.
  struct Frame {
    bool is_map = false;
    std::string path;
    // Mappings: whether the next node is a key; the current key, when it is a scalar.
    bool expect_key = true;
    std::optional<std::string> key;
    std::unordered_map<std::string, int> key_lines;
    size_t index = 0;  // Sequences: the next item's index.
  };

  // The path of the node that comes next in the innermost open collection.
  std::string NextPath() const {
    if (frames_.empty()) return "";
    const Frame& f = frames_.back();
    if (!f.is_map) return f.path + "[" + std::to_string(f.index) + "]";
    return Join(f.path, !f.expect_key && f.key ? *f.key : "?");
  }

  // A node is complete: a scalar, alias or null with `key_text`, or a collection opened.
  void Node(const YAML::Mark& mark, std::optional<std::string> key_text) {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    if (!f.is_map) {
      ++f.index;
      return;
    }
    if (!f.expect_key) {
      f.expect_key = true;
      return;
    }
    f.expect_key = false;
    f.key = std::move(key_text);
    if (!f.key) return;
    const int line = mark.line + 1;
    auto [it, inserted] = f.key_lines.emplace(*f.key, line);
    if (inserted) return;
    FieldErrors& errors = errors_.back();
    if (errors.errors().size() >= kMaxDuplicateErrors) return;
    errors.Add(Join(f.path, *f.key), "duplicate key \"" + Abbreviate(*f.key) + "\" at line " +
                                         std::to_string(line) + ", already set at line " +
                                         std::to_string(it->second));
  }

  void Open(const YAML::Mark& mark, bool is_map) {
    std::string path = NextPath();
    Node(mark, std::nullopt);  // A collection as a key has no text to compare.
    Frame f;
    f.is_map = is_map;
    f.path = std::move(path);
    frames_.push_back(std::move(f));
  }

  void Close() {
    if (!frames_.empty()) frames_.pop_back();
  }

  void CheckQuotes(const YAML::Mark& mark) {
    if (!offsets_known_ || !stream_error_.ok() || mark.pos < 0) return;
    size_t opening = 0;
    if (!QuotedScalarIsUnterminated(text_, static_cast<size_t>(mark.pos) + offset_, &opening)) {
      return;
    }
    const auto [line, column] = LineAndColumn(text_, opening);
    stream_error_ = absl::InvalidArgumentError(
        "document " + std::to_string(documents_) + ": malformed YAML at line " +
        std::to_string(line) + ", column " + std::to_string(column) +
        ": the quoted string that starts here is never closed");
  }

  std::string_view text_;
  size_t offset_ = 0;
  bool offsets_known_ = true;
  int documents_ = 0;
  int last_document_pos_ = -1;
  bool in_document_ = false;
  std::vector<FieldErrors> errors_;  // One per document begun.
  std::vector<Frame> frames_;
  std::unordered_map<YAML::anchor_t, std::string> scalar_anchors_;
  absl::Status stream_error_;
};

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
  Converter<YamlTree>(errors).ToMessage(node, message, "", 0);
}

void JsonToMessage(const nlohmann::ordered_json& value, google::protobuf::Message* message,
                   FieldErrors& errors) {
  Converter<JsonTree>(errors).ToMessage(value, message, "", 0);
}

absl::StatusOr<std::vector<ManifestDocument>> ParseManifests(const std::string& text) {
  if (text.size() > kMaxManifestBytes) {
    return absl::InvalidArgumentError("manifest is larger than " +
                                      std::to_string(kMaxManifestBytes) + " bytes");
  }
  // Two parses of the same text: the checker's events, then yaml-cpp's nodes. Both take
  // the documents in the same order, so document i of one is document i of the other.
  StrictnessChecker checker(text);
  std::vector<YAML::Node> nodes;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (checker.stream_error().ok() && parser.HandleNextDocument(checker)) {
    }
    if (!checker.stream_error().ok()) return checker.stream_error();
    nodes = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    const int document = checker.documents() + (checker.in_document() ? 0 : 1);
    // yaml-cpp says "bad file" when its recursion guard trips.
    const std::string what = dynamic_cast<const YAML::DeepRecursion*>(&e) != nullptr
                                 ? "nesting is deeper than the YAML parser allows"
                                 : e.msg;
    return absl::InvalidArgumentError("document " + std::to_string(document) +
                                      ": malformed YAML at line " +
                                      std::to_string(e.mark.line + 1) + ", column " +
                                      std::to_string(e.mark.column + 1) + ": " + what);
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
    // A duplicate key fails its document before anything else, as in Kubernetes, whose
    // strict decoder refuses it while reading the YAML.
    if (const FieldErrors& strict = checker.ErrorsOf(index); !strict.empty()) {
      doc.status = strict.ToStatus(doc.Describe());
      docs.push_back(std::move(doc));
      continue;
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

nlohmann::ordered_json MessageToJsonViaProtobuf(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = false;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(out, nullptr, false);
  if (j.is_discarded()) return nlohmann::ordered_json::object();
  Int64sAsNumbers(j, message.GetDescriptor());
  return j;
}

nlohmann::ordered_json MessageToJsonValue(const google::protobuf::Message& message) {
  if (auto text = WriteMessageJson(message)) {
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(*text, nullptr, false);
    if (!j.is_discarded()) return j;
  }
  return MessageToJsonViaProtobuf(message);
}

std::string MessageToJson(const google::protobuf::Message& message, bool pretty) {
  if (!pretty) {
    if (auto text = WriteMessageJson(message)) return *std::move(text);
    return MessageToJsonViaProtobuf(message).dump();
  }
  return MessageToJsonValue(message).dump(2);
}

std::string MessageToYaml(const google::protobuf::Message& message) {
  nlohmann::ordered_json j = MessageToJsonValue(message);
  YAML::Emitter out;
  EmitJson(out, j);
  return std::string(out.c_str(), out.size()) + "\n";
}

}  // namespace kaito
