// kubectl's JSONPath templates, as `-o jsonpath=`, `-o custom-columns=`, `--sort-by` and
// `wait --for=jsonpath=` take them, over the JSON that `-o json` prints.
//
// The dialect is kubectl's (k8s.io/client-go/util/jsonpath):
//   - text outside braces prints as it is; `{"\n"}` (or `{'\t'}`) prints a quoted literal,
//     with the escapes \n \t \r \\ \" \';
//   - `{.a.b}` prints what the path selects; several results are joined by one space;
//     strings print raw, numbers, booleans and null as JSON, objects and arrays as compact JSON;
//   - `{range .items[*]}...{end}` runs its body once per selected value, with `.` and `@`
//     meaning that value inside the body (`$` always means the whole input);
//   - steps: `.name` (`\.` escapes a dot in a name: `.metadata.labels.kaito\.sh/workspace`),
//     `['name']` and `['a','b']`, `.*` and `[*]`, `[2]`, `[-1]`, `[0,2]`, slices `[1:3]`,
//     `[::2]`, recursive descent `..name`, and filters `[?(@.type=="Ready")]` with
//     `==`, `!=`, `<`, `<=`, `>`, `>=` against a quoted string, a number, true, false, null
//     or another path, and existence `[?(@.x)]`.
// A field that is missing selects nothing and prints nothing, as with kubectl's default
// `--allow-missing-template-keys=true`; an index past the end selects nothing.
//
// Parsing is the only step that fails. Both parsing and execution are pure; a parsed
// template is immutable and safe to share between threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kaito::ctl {

// JSON with its fields in the order they were written, as `MessageToJson` prints them.
using Json = nlohmann::ordered_json;

namespace jsonpath_internal {
struct Program;
}  // namespace jsonpath_internal

class JsonPath {
 public:
  // Parses a whole template (`-o jsonpath=`). A bad template is INVALID_ARGUMENT whose
  // message quotes the template and names the problem and its position, e.g.
  // `jsonpath template "{.items[": unclosed "[" at character 8`.
  static absl::StatusOr<JsonPath> Parse(absl::string_view text);

  // Parses one path as kubectl's `--sort-by` and custom columns take it, braces optional
  // and the leading dot too: `{.metadata.name}`, `.metadata.name`, `metadata.name`.
  static absl::StatusOr<JsonPath> ParseExpression(absl::string_view text);

  // The template's text for `data`.
  std::string Execute(const Json& data) const;

  // What the template's paths select in `data`, in order; literal text is ignored and a
  // range contributes what its body selects for each of its values.
  std::vector<Json> Select(const Json& data) const;

  // The template as it was given.
  const std::string& text() const;

 private:
  explicit JsonPath(std::shared_ptr<const jsonpath_internal::Program> program);
  std::shared_ptr<const jsonpath_internal::Program> program_;
};

// How a selected value prints: a string raw, anything else as compact JSON.
std::string JsonValueText(const Json& value);

}  // namespace kaito::ctl
