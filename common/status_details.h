// The machine-readable half of the API's error model: validation problems travel as a
// `google.rpc.BadRequest` in a failed call's error details (the `grpc-status-details-bin`
// trailer, a serialized `google.rpc.Status`), so that a client shows field paths without
// parsing the message. The server side builds them (`FieldErrors::ToStatus`,
// `ToGrpcStatus`); clients read them back with `FieldViolations`.
#pragma once

#include <grpcpp/support/status.h>

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/string_view.h"
#include "common/field_errors.h"

namespace kaito {

// The type URL of a `google.rpc.BadRequest`, both as an absl::Status payload and in
// `google.rpc.Status.details`.
inline constexpr absl::string_view kBadRequestTypeUrl = "type.googleapis.com/google.rpc.BadRequest";

// Bounds on an error's trailer. A gRPC 1.51 client refuses a reply whose metadata passes
// 8 KiB (GRPC_ARG_MAX_METADATA_SIZE's default: key + value + 32 bytes an entry, the
// message counted percent-encoded, binary values decoded) with RESOURCE_EXHAUSTED; when
// that is the connection's first reply, its later calls fail the same way. An error with
// details keeps its message and its details within 6 KiB together.
//
// At most this many violations, the last of them saying how many more there were.
inline constexpr size_t kMaxFieldViolations = 64;
// The message of an error with details, in percent-encoded bytes (plus "...(N bytes)").
inline constexpr size_t kMaxErrorMessageWithDetails = 2048;
// The serialized `google.rpc.Status`, which repeats the message.
inline constexpr size_t kMaxErrorDetails = 4096;
// One serialized `google.rpc.BadRequest`: what is left of `kMaxErrorDetails` after the
// message and the framing, so that a validation error's details always fit.
inline constexpr size_t kMaxBadRequest = kMaxErrorDetails - kMaxErrorMessageWithDetails - 128;

// Server side.

// `errors` as a serialized `google.rpc.BadRequest`, one violation per error in order
// (`field` = the path, `description` = the message, invalid UTF-8 replaced by '?'). Past
// `kMaxFieldViolations` or `kMaxBadRequest` bytes it keeps the first that fit and ends
// with a violation with no field, "N more field errors not shown".
absl::Cord BadRequestPayload(const std::vector<FieldError>& errors);

// The error details of a gRPC status for `status` with message `message`: a serialized
// `google.rpc.Status` {code, message, one `Any` per payload of `status`, in the order
// `ForEachPayload` visits them}, at most `kMaxErrorDetails` bytes (a payload that does not fit is
// left out). Empty when `status` is OK or none of its payloads fit, so a status without payloads
// carries no details.
std::string ErrorDetails(const absl::Status& status, absl::string_view message);

// Client side.

// The field violations that `status`'s error details carry (every `google.rpc.BadRequest`
// in the `google.rpc.Status`, in order), as {path = field, message = description}. Empty
// when the status is OK, has no details, or its details are not such a message: never
// fails, whatever the bytes.
std::vector<FieldError> FieldViolations(const grpc::Status& status);

// The same from an absl::Status's `kBadRequestTypeUrl` payload (what
// `FieldErrors::ToStatus` attaches), for code that has not gone through gRPC.
std::vector<FieldError> FieldViolations(const absl::Status& status);

}  // namespace kaito
