// The manifest codec: multi-document YAML to protobuf and back.
//
// A document's fields are matched to the message's fields by their proto3 JSON names
// (the Kubernetes names), with Kubernetes' strictness: an unknown field, a value of the
// wrong type (a number where a string belongs, a map where a list belongs) or an
// unknown enum value is an error naming the document, the field path and the problem.
// Schemaless fields (`google.protobuf.Struct`, e.g. `inference.template`) take any YAML.
// Served kinds: kaito.sh/v1alpha1 and kaito.sh/v1beta1 Workspace, v1 ConfigMap and
// Secret. Other kinds get a "not supported" error for their document only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/field_errors.h"

namespace YAML {
class Node;
}

namespace kaito {

struct ManifestDocument {
  int index = 0;  // 1-based position in the stream.
  std::string api_version;
  std::string kind;
  std::string name;
  std::string namespace_;
  // A kaito::v1::Workspace, ConfigMap or Secret; null when `status` is not OK.
  std::unique_ptr<google::protobuf::Message> object;
  absl::Status status;

  // `document 2 (Workspace "x")`, for messages.
  std::string Describe() const;
};

// Limits that keep hostile input cheap.
inline constexpr size_t kMaxManifestBytes = 8 << 20;
inline constexpr int kMaxManifestDepth = 64;
inline constexpr int64_t kMaxManifestNodes = 1 << 20;

// Parses every document of a YAML stream. Malformed YAML is an error for the whole
// stream (with line and column); a bad document only fails that document. Empty
// documents are skipped.
absl::StatusOr<std::vector<ManifestDocument>> ParseManifests(const std::string& text);

// Fills `message` from one YAML node; every problem is added to `errors` with its path.
void YamlToMessage(const YAML::Node& node, google::protobuf::Message* message,
                   FieldErrors& errors);

// Proto3 JSON with the Kubernetes names; `pretty` indents with two spaces.
std::string MessageToJson(const google::protobuf::Message& message, bool pretty);
// YAML with the Kubernetes names, fields in proto order, defaults omitted.
std::string MessageToYaml(const google::protobuf::Message& message);

}  // namespace kaito
