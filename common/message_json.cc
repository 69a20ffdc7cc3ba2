#include "common/message_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kaito {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A double as protobuf's printer writes it (the shortest of %.15g and %.17g that reads
// back the same), then as nlohmann::json prints that text once parsed: "3" stays an
// integer, "0.1" a float.
bool AppendDouble(double v, int digits_short, int digits_long, std::string* out) {
  if (!std::isfinite(v)) return false;
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*g", digits_short, v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof(buf), "%.*g", digits_long, v);
  nlohmann::json parsed = nlohmann::json::parse(buf, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return false;
  out->append(parsed.dump());
  return true;
}

class Writer {
 public:
  explicit Writer(std::string* out) : out_(*out) {}

  bool Object(const Message& m, const JsonHead* head) {
    const Descriptor* d = m.GetDescriptor();
    if (d->file()->package() == "google.protobuf") return WellKnown(m);
    out_.push_back('{');
    bool first = true;
    if (head != nullptr) {
      for (const auto& [key, value] : *head) {
        if (!IsValidUtf8(key) || !IsValidUtf8(value)) return false;
        if (!first) out_.push_back(',');
        first = false;
        AppendJsonString(key, &out_);
        out_.push_back(':');
        AppendJsonString(value, &out_);
      }
    }
    const Reflection* r = m.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    r->ListFields(m, &fields);
    for (const FieldDescriptor* f : fields) {
      if (head != nullptr && std::any_of(head->begin(), head->end(), [f](const auto& h) {
            return h.first == f->json_name();
          })) {
        continue;
      }
      if (!first) out_.push_back(',');
      first = false;
      AppendJsonString(f->json_name(), &out_);
      out_.push_back(':');
      if (!Field(m, f)) return false;
    }
    out_.push_back('}');
    return true;
  }

 private:
  bool Field(const Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    if (f->is_map()) return Map(m, f);
    if (f->is_repeated()) {
      out_.push_back('[');
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (i > 0) out_.push_back(',');
        if (!Value(m, f, i)) return false;
      }
      out_.push_back(']');
      return true;
    }
    return Value(m, f, -1);
  }

  // Map entries sorted by key: protobuf's printer keeps the wire order, which a hash
  // decides; Kubernetes prints maps sorted.
  bool Map(const Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    const int n = r->FieldSize(m, f);
    std::vector<std::pair<std::string, const Message*>> entries;
    entries.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const Message& entry = r->GetRepeatedMessage(m, f, i);
      entries.emplace_back(MapKey(entry, key_field), &entry);
    }
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    out_.push_back('{');
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out_.push_back(',');
      if (!IsValidUtf8(entries[i].first)) return false;
      AppendJsonString(entries[i].first, &out_);
      out_.push_back(':');
      if (!Value(*entries[i].second, value_field, -1)) return false;
    }
    out_.push_back('}');
    return true;
  }

  static std::string MapKey(const Message& entry, const FieldDescriptor* key) {
    const Reflection* r = entry.GetReflection();
    switch (key->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return r->GetString(entry, key);
      case FieldDescriptor::CPPTYPE_INT32:
        return std::to_string(r->GetInt32(entry, key));
      case FieldDescriptor::CPPTYPE_INT64:
        return std::to_string(r->GetInt64(entry, key));
      case FieldDescriptor::CPPTYPE_UINT32:
        return std::to_string(r->GetUInt32(entry, key));
      case FieldDescriptor::CPPTYPE_UINT64:
        return std::to_string(r->GetUInt64(entry, key));
      case FieldDescriptor::CPPTYPE_BOOL:
        return r->GetBool(entry, key) ? "true" : "false";
      default:
        return "";
    }
  }

  // One value of `f`: item `i` of a repeated field, or the singular value (i < 0).
  bool Value(const Message& m, const FieldDescriptor* f, int i) {
    const Reflection* r = m.GetReflection();
    const bool rep = i >= 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        absl::StrAppend(&out_, rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f));
        return true;
      case FieldDescriptor::CPPTYPE_INT64:
        absl::StrAppend(&out_, rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f));
        return true;
      case FieldDescriptor::CPPTYPE_UINT32:
        absl::StrAppend(&out_, rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f));
        return true;
      case FieldDescriptor::CPPTYPE_UINT64:
        absl::StrAppend(&out_, rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f));
        return true;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        return AppendDouble(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f), DBL_DIG,
                            DBL_DIG + 2, &out_);
      case FieldDescriptor::CPPTYPE_FLOAT:
        return AppendDouble(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f), FLT_DIG,
                            FLT_DIG + 3, &out_);
      case FieldDescriptor::CPPTYPE_BOOL:
        out_.append((rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true" : "false");
        return true;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const int number = rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
        const auto* value = f->enum_type()->FindValueByNumber(number);
        if (value == nullptr) {
          absl::StrAppend(&out_, number);
        } else {
          AppendJsonString(value->name(), &out_);
        }
        return true;
      }
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                   : r->GetStringReference(m, f, &scratch);
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          AppendJsonString(absl::Base64Escape(s), &out_);
          return true;
        }
        if (!IsValidUtf8(s)) return false;
        AppendJsonString(s, &out_);
        return true;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return Object(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), nullptr);
    }
    return false;
  }

  bool WellKnown(const Message& m) {
    if (const auto* ts = dynamic_cast<const google::protobuf::Timestamp*>(&m)) {
      using google::protobuf::util::TimeUtil;
      if (ts->seconds() < TimeUtil::kTimestampMinSeconds ||
          ts->seconds() > TimeUtil::kTimestampMaxSeconds || ts->nanos() < 0 ||
          ts->nanos() > 999999999) {
        return false;
      }
      AppendJsonString(TimeUtil::ToString(*ts), &out_);
      return true;
    }
    if (const auto* s = dynamic_cast<const google::protobuf::Struct*>(&m)) return Struct(*s);
    if (const auto* v = dynamic_cast<const google::protobuf::Value*>(&m)) return StructValue(*v);
    if (const auto* l = dynamic_cast<const google::protobuf::ListValue*>(&m)) return List(*l);
    return false;
  }

  bool Struct(const google::protobuf::Struct& s) {
    std::vector<const google::protobuf::MapPair<std::string, google::protobuf::Value>*> fields;
    fields.reserve(s.fields().size());
    for (const auto& entry : s.fields()) fields.push_back(&entry);
    std::sort(fields.begin(), fields.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    out_.push_back('{');
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out_.push_back(',');
      if (!IsValidUtf8(fields[i]->first)) return false;
      AppendJsonString(fields[i]->first, &out_);
      out_.push_back(':');
      if (!StructValue(fields[i]->second)) return false;
    }
    out_.push_back('}');
    return true;
  }

  bool List(const google::protobuf::ListValue& l) {
    out_.push_back('[');
    for (int i = 0; i < l.values_size(); ++i) {
      if (i > 0) out_.push_back(',');
      if (!StructValue(l.values(i))) return false;
    }
    out_.push_back(']');
    return true;
  }

  bool StructValue(const google::protobuf::Value& v) {
    using google::protobuf::Value;
    switch (v.kind_case()) {
      case Value::kNullValue:
        out_.append("null");
        return true;
      case Value::kNumberValue:
        return AppendDouble(v.number_value(), DBL_DIG, DBL_DIG + 2, &out_);
      case Value::kStringValue:
        if (!IsValidUtf8(v.string_value())) return false;
        AppendJsonString(v.string_value(), &out_);
        return true;
      case Value::kBoolValue:
        out_.append(v.bool_value() ? "true" : "false");
        return true;
      case Value::kStructValue:
        return Struct(v.struct_value());
      case Value::kListValue:
        return List(v.list_value());
      default:
        return false;
    }
  }

  std::string& out_;
};

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kLeast[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t plain = 0;  // Start of the run not yet copied.
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xF]);
    }
  }
  out->append(s.data() + plain, s.size() - plain);
  out->push_back('"');
}

std::optional<std::string> WriteMessageJson(const google::protobuf::Message& message,
                                            const JsonHead& head) {
  std::string out;
  out.reserve(512);
  if (!Writer(&out).Object(message, &head)) return std::nullopt;
  return out;
}

}  // namespace kaito
