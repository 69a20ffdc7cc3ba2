#include "common/status_details.h"

#include <google/protobuf/any.pb.h>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace kaito {
namespace {

// Room kept for the last violation, "N more field errors not shown".
constexpr size_t kOmittedViolationBytes = 64;

// The length of the valid UTF-8 sequence at the start of `s`, or 0 when it starts with
// an invalid one. Overlong forms and surrogates are invalid, as protobuf's check has it.
size_t Utf8SequenceLength(absl::string_view s) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char low = 0x80, high = 0xBF;  // The range of the second byte.
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < length || byte(1) < low || byte(1) > high) return 0;
  for (size_t i = 2; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
  }
  return length;
}

// `s` with every byte that does not begin a valid UTF-8 sequence replaced by '?': proto3
// strings must be UTF-8, and some clients (Go's) fail the whole call on details that
// are not.
std::string ValidUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    size_t n = Utf8SequenceLength(s);
    if (n == 0) {
      out.push_back('?');
      n = 1;
    } else {
      out.append(s.data(), n);
    }
    s.remove_prefix(n);
  }
  return out;
}

// The bytes an element of a repeated message field adds to its parent: tag, length, body.
size_t RepeatedElementBytes(size_t body) {
  size_t length_bytes = 1;
  for (size_t v = body; v >= 0x80; v >>= 7) ++length_bytes;
  return 1 + length_bytes + body;
}

// The last segment of a type URL ("type.googleapis.com/google.rpc.BadRequest" ->
// "google.rpc.BadRequest"), which names the type whatever the host.
absl::string_view TypeName(absl::string_view type_url) {
  size_t slash = type_url.rfind('/');
  return slash == absl::string_view::npos ? type_url : type_url.substr(slash + 1);
}

constexpr absl::string_view kBadRequestTypeName = "google.rpc.BadRequest";

void AppendViolations(const std::string& serialized, std::vector<FieldError>& out) {
  google::rpc::BadRequest bad_request;
  if (!bad_request.ParseFromString(serialized)) return;
  for (const auto& v : bad_request.field_violations()) {
    out.push_back({v.field(), v.description()});
  }
}

}  // namespace

absl::Cord BadRequestPayload(const std::vector<FieldError>& errors) {
  google::rpc::BadRequest bad_request;
  size_t bytes = 0;
  size_t kept = 0;
  for (const FieldError& error : errors) {
    google::rpc::BadRequest::FieldViolation violation;
    violation.set_field(ValidUtf8(error.path));
    violation.set_description(ValidUtf8(error.message));
    const size_t add = RepeatedElementBytes(violation.ByteSizeLong());
    // While more errors follow, leave room for the violation that counts them.
    const bool more_follow = kept + 1 < errors.size();
    const size_t max_count = kMaxFieldViolations - (more_follow ? 1 : 0);
    const size_t max_bytes = kMaxBadRequest - (more_follow ? kOmittedViolationBytes : 0);
    if (kept + 1 > max_count || bytes + add > max_bytes) break;
    *bad_request.add_field_violations() = std::move(violation);
    bytes += add;
    ++kept;
  }
  if (kept < errors.size()) {
    auto* omitted = bad_request.add_field_violations();
    omitted->set_description(absl::StrCat(errors.size() - kept, " more field errors not shown"));
  }
  return absl::Cord(bad_request.SerializeAsString());
}

std::string ErrorDetails(const absl::Status& status, absl::string_view message) {
  if (status.ok()) return "";
  google::rpc::Status details;
  details.set_code(static_cast<int32_t>(status.code()));
  details.set_message(ValidUtf8(message));
  size_t bytes = details.ByteSizeLong();
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    google::protobuf::Any any;
    any.set_type_url(std::string(type_url));
    any.set_value(std::string(payload));
    const size_t add = RepeatedElementBytes(any.ByteSizeLong());
    if (bytes + add > kMaxErrorDetails) return;
    *details.add_details() = std::move(any);
    bytes += add;
  });
  if (details.details().empty()) return "";
  return details.SerializeAsString();
}

std::vector<FieldError> FieldViolations(const grpc::Status& status) {
  std::vector<FieldError> out;
  if (status.ok() || status.error_details().empty()) return out;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return out;
  for (const google::protobuf::Any& any : details.details()) {
    if (TypeName(any.type_url()) == kBadRequestTypeName) AppendViolations(any.value(), out);
  }
  return out;
}

std::vector<FieldError> FieldViolations(const absl::Status& status) {
  std::vector<FieldError> out;
  auto payload = status.GetPayload(kBadRequestTypeUrl);
  if (payload) AppendViolations(std::string(*payload), out);
  return out;
}

}  // namespace kaito
