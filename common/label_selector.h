// Kubernetes label selectors: the string form of List/Watch requests
// ("a=b,c!=d,e in (x,y),f notin (z),g,!h") and the structured `LabelSelector` message.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/field_errors.h"
#include "kaito/v1/meta.pb.h"

namespace kaito {

class LabelSelectorMatcher {
 public:
  enum class Op { kIn, kNotIn, kExists, kDoesNotExist };
  struct Requirement {
    std::string key;
    Op op;
    std::vector<std::string> values;
  };

  // Parses the string form. An empty string matches everything. INVALID_ARGUMENT names
  // the offending requirement.
  static absl::StatusOr<LabelSelectorMatcher> Parse(const std::string& selector);
  // Builds from the structured form; problems are added to `errors` under `path`.
  static LabelSelectorMatcher FromProto(const v1::LabelSelector& selector,
                                        const std::string& path, FieldErrors& errors);

  bool Matches(const google::protobuf::Map<std::string, std::string>& labels) const;
  bool empty() const { return requirements_.empty(); }
  const std::vector<Requirement>& requirements() const { return requirements_; }

 private:
  std::vector<Requirement> requirements_;
};

}  // namespace kaito
