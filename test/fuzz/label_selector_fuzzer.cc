// libFuzzer target: the label-selector parser. The input is the string form for `Parse`
// and, read as a serialized `LabelSelector`, the structured form for `FromProto`. Besides
// the sanitizers' findings it checks that a selector accepted has only valid keys and
// values, and that matching it against labels made from its own requirements is safe.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/k8s_names.h"
#include "common/label_selector.h"

namespace {

[[noreturn]] void Broken(const std::string& what, const std::string& input) {
  std::fprintf(stderr, "label_selector_fuzzer: %s\ninput: \"%s\"\n", what.c_str(), input.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = kaito::LabelSelectorMatcher::Parse(text);
  if (parsed.ok()) {
    google::protobuf::Map<std::string, std::string> labels;
    for (const auto& r : parsed->requirements()) {
      if (!kaito::CheckQualifiedName(r.key).empty()) Broken("an accepted key is valid", text);
      for (const auto& v : r.values) {
        if (!kaito::CheckLabelValue(v).empty()) Broken("an accepted value is valid", text);
      }
      labels[r.key] = r.values.empty() ? "" : r.values.front();
    }
    (void)parsed->Matches(labels);
    (void)parsed->Matches({});
  } else if (parsed.status().code() != absl::StatusCode::kInvalidArgument) {
    Broken("a refused selector is INVALID_ARGUMENT", text);
  }

  kaito::v1::LabelSelector selector;
  if (selector.ParseFromString(text)) {
    kaito::FieldErrors errors;
    auto matcher = kaito::LabelSelectorMatcher::FromProto(selector, "selector", errors);
    (void)matcher.Matches(selector.match_labels());
    (void)errors.ToStatus("selector");
  }
  return 0;
}
