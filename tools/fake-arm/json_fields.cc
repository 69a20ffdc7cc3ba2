#include "tools/fake-arm/json_fields.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kaito::fakearm {

JsonFields::JsonFields(const Json& object, std::string where)
    : object_(object), where_(std::move(where)) {
  if (!object_.is_object()) {
    status_ = absl::InvalidArgumentError(where_.empty()
                                             ? std::string("expected a JSON object")
                                             : absl::StrCat(where_, ": expected a JSON object"));
  }
}

std::string JsonFields::Name(const char* key) const {
  return where_.empty() ? std::string(key) : absl::StrCat(where_, ".", key);
}

const Json* JsonFields::Take(const char* key) {
  read_.insert(key);
  if (!object_.is_object()) return nullptr;
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return nullptr;
  return &*it;
}

void JsonFields::Fail(const char* key, const std::string& problem) {
  if (status_.ok()) status_ = absl::InvalidArgumentError(absl::StrCat(Name(key), ": ", problem));
}

std::optional<std::string> JsonFields::String(const char* key) {
  const Json* v = Take(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    Fail(key, "expected a string");
    return std::nullopt;
  }
  return v->get<std::string>();
}

std::optional<int64_t> JsonFields::Int(const char* key, int64_t min, int64_t max) {
  const Json* v = Take(key);
  if (v == nullptr) return std::nullopt;
  bool ok = v->is_number_integer();
  int64_t value = 0;
  if (ok && v->is_number_unsigned()) {
    ok = v->get<uint64_t>() <= static_cast<uint64_t>(max);
    if (ok) value = static_cast<int64_t>(v->get<uint64_t>());
  } else if (ok) {
    value = v->get<int64_t>();
  }
  if (!ok || value < min || value > max) {
    Fail(key, absl::StrCat("expected an integer in [", min, ", ", max, "]"));
    return std::nullopt;
  }
  return value;
}

std::optional<double> JsonFields::Number(const char* key, double min, double max) {
  const Json* v = Take(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number() || v->get<double>() < min || v->get<double>() > max) {
    Fail(key, absl::StrCat("expected a number in [", min, ", ", max, "]"));
    return std::nullopt;
  }
  return v->get<double>();
}

std::optional<bool> JsonFields::Bool(const char* key) {
  const Json* v = Take(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) {
    Fail(key, "expected true or false");
    return std::nullopt;
  }
  return v->get<bool>();
}

const Json* JsonFields::Object(const char* key) {
  const Json* v = Take(key);
  if (v == nullptr) return nullptr;
  if (!v->is_object()) {
    Fail(key, "expected a JSON object");
    return nullptr;
  }
  return v;
}

const Json* JsonFields::Array(const char* key) {
  const Json* v = Take(key);
  if (v == nullptr) return nullptr;
  if (!v->is_array()) {
    Fail(key, "expected a JSON array");
    return nullptr;
  }
  return v;
}

const Json* JsonFields::Raw(const char* key) { return Take(key); }

absl::Status JsonFields::Finish() const {
  if (!status_.ok()) return status_;
  for (const auto& [key, value] : object_.items()) {
    if (read_.count(key) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where_.empty() ? std::string() : where_ + ": ",
                                                     "unknown field \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace kaito::fakearm
