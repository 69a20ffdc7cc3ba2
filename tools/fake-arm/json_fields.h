// Strict reading of one JSON object of the control API: each accessor checks its field's
// type and range, and `Finish` reports the first problem or an unknown field, naming it
// ("action.delay_ms: expected an integer in [0, 600000]"). A null field reads as absent.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "tools/fake-arm/arm_wire.h"

namespace kaito::fakearm {

class JsonFields {
 public:
  // `object` must outlive the reader. `where` prefixes field names in errors ("" at the top).
  JsonFields(const Json& object, std::string where);

  std::optional<std::string> String(const char* key);
  std::optional<int64_t> Int(const char* key, int64_t min, int64_t max);
  std::optional<double> Number(const char* key, double min, double max);
  std::optional<bool> Bool(const char* key);
  // The field when it is an object (or array); null when absent or of another type.
  const Json* Object(const char* key);
  const Json* Array(const char* key);
  // Takes `key` as read with no check (the caller checks it).
  const Json* Raw(const char* key);
  // Records a problem with `key` found by the caller.
  void Fail(const char* key, const std::string& problem);

  // The first problem, or InvalidArgument for a field no accessor asked for.
  absl::Status Finish() const;

 private:
  const Json* Take(const char* key);
  std::string Name(const char* key) const;

  const Json& object_;
  std::string where_;
  std::set<std::string> read_;
  absl::Status status_;
};

}  // namespace kaito::fakearm
