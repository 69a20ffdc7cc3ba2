// The manifest codec: multi-document YAML to protobuf and back.
//
// A document's fields are matched to the message's fields by their proto3 JSON names
// (the Kubernetes names), with Kubernetes' strictness: an unknown field, a value of the
// wrong type (a number where a string belongs, a map where a list belongs) or an
// unknown enum value is an error naming the document, the field path and the problem.
// Schemaless fields (`google.protobuf.Struct`, e.g. `inference.template`) take any YAML.
// Served kinds: kaito.sh/v1alpha1 and kaito.sh/v1beta1 Workspace, v1 ConfigMap and
// Secret. Other kinds get a "not supported" error for their document only.
//
// Strict decoding, as Kubernetes' (sigs.k8s.io/yaml) is strict where yaml-cpp 0.7 is not:
// a mapping key repeated in one mapping fails its document, naming the key's path and both
// lines; a quoted scalar that never closes (which yaml-cpp would run to the end of the
// input) fails the stream as malformed YAML, naming its document and line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <google/protobuf/message.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/field_errors.h"
#include "common/limits.h"

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
// Nodes (messages, list items, map entries) of one document: a decoded node takes up to
// about 200 bytes of memory, so one document costs at most about 50 MB while decoded.
inline constexpr int64_t kMaxManifestNodes = 1 << 18;
// A document is converted with its aliases expanded. Conversion counts the fewest bytes
// the result can take in protobuf's encoding (each string's bytes, two for every message,
// list item and map entry) and stops with an error past the largest request the server
// accepts: such a document could never be sent, and a YAML alias bomb stops here instead
// of building hundreds of megabytes.
inline constexpr size_t kMaxDocumentBytes = kMaxRequestBytes;
// Conversion stops after this many field errors in one document.
inline constexpr size_t kMaxDocumentErrors = 64;

// Parses every document of a YAML stream. Malformed YAML (including a quoted scalar that
// never closes) is an error for the whole stream, naming the document, line and column;
// a bad document (an unknown field, a duplicate key, ...) only fails that document.
// Empty documents are skipped. Never throws and never crashes, whatever `text` holds.
absl::StatusOr<std::vector<ManifestDocument>> ParseManifests(const std::string& text);

// Fills `message` from one YAML node; every problem is added to `errors` with its path.
// Bounded by `kMaxManifestNodes`, `kMaxManifestDepth`, `kMaxDocumentBytes` and
// `kMaxDocumentErrors`: past any of them it adds an error and stops.
void YamlToMessage(const YAML::Node& node, google::protobuf::Message* message,
                   FieldErrors& errors);

// The same from a JSON value (a request body already parsed), with the same strictness: a
// JSON string is a quoted YAML scalar, a number, boolean or null a plain one.
void JsonToMessage(const nlohmann::ordered_json& value, google::protobuf::Message* message,
                   FieldErrors& errors);

// Proto3 JSON with the Kubernetes names, 64-bit integers as numbers (as Kubernetes prints
// them), as a JSON value; an object that cannot be printed (invalid UTF-8) is `{}`.
nlohmann::ordered_json MessageToJsonValue(const google::protobuf::Message& message);
// The same through protobuf's own JSON printer (what MessageToJsonValue falls back to for
// what message_json.h leaves to it; and the reference its tests compare against).
nlohmann::ordered_json MessageToJsonViaProtobuf(const google::protobuf::Message& message);
// The same as text; `pretty` indents with two spaces.
std::string MessageToJson(const google::protobuf::Message& message, bool pretty);
// YAML with the Kubernetes names, fields in proto order, defaults omitted.
std::string MessageToYaml(const google::protobuf::Message& message);

}  // namespace kaito
