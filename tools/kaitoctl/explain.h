// `kaitoctl explain TYPE[.field.path]`: a kind's fields, as `kubectl explain` prints them
// (GROUP, KIND, VERSION, FIELD, DESCRIPTION, FIELDS), from the API's protobuf descriptors.
//
// Descriptions are the proto files' comments: the build compiles the API's descriptors with
// their source info (protoc leaves comments out of the generated code) and embeds them
// (`DocumentedApiPool`). Types are the JSON types a manifest writes: string, integer,
// number, boolean, a message's name (`<ObjectMeta>`), `[]T`, `map[string]T`, `Object` for
// free-form fields (google.protobuf.Struct); timestamps and durations are strings.
#pragma once

#include <google/protobuf/descriptor.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/kaitoctl/resource_types.h"

namespace kaito::ctl {

// The API's descriptors with their comments; built once, on first use, from the embedded
// descriptor set. Never null.
const google::protobuf::DescriptorPool& DocumentedApiPool();

// The explanation of `type`, or of the field at `field_path` under it ("status.conditions",
// JSON names; empty for the kind itself), with descriptors from `pool`. `recursive` lists
// every field below, indented, without descriptions. An unknown field is NOT_FOUND naming
// it as kubectl does: `field "x" does not exist`.
absl::StatusOr<std::string> Explain(const ResourceType& type,
                                    const google::protobuf::DescriptorPool& pool,
                                    absl::string_view field_path, bool recursive);

}  // namespace kaito::ctl
