// The error details of the API's error model, without a network: `FieldErrors::ToStatus`
// attaches a `google.rpc.BadRequest`, `ToGrpcStatus` turns payloads into a serialized
// `google.rpc.Status`, and `FieldViolations` reads them back; each within its bounds.
#include "common/status_details.h"

#include <gmock/gmock.h>
#include <google/protobuf/any.pb.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/field_errors.h"
#include "common/rpc_metrics.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace kaito {

// For the matchers' messages.
void PrintTo(const FieldError& e, std::ostream* os) {
  *os << "{" << e.path << ", " << e.message << "}";
}

namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;
using ::testing::SizeIs;

auto Violation(const std::string& path, const std::string& message) {
  return ::testing::AllOf(Field(&FieldError::path, path), Field(&FieldError::message, message));
}

// The size of `message` as gRPC sends it, percent-encoded.
size_t WireSize(const std::string& message) {
  size_t n = 0;
  for (char c : message) {
    const auto b = static_cast<unsigned char>(c);
    n += b < 0x20 || b > 0x7E || b == '%' ? 3 : 1;
  }
  return n;
}

google::rpc::Status ParseDetails(const grpc::Status& status) {
  google::rpc::Status details;
  EXPECT_TRUE(details.ParseFromString(status.error_details()));
  return details;
}

TEST(StatusDetailsTest, DescriptorsAreRegisteredOnceUnderTheirPublicNames) {
  // A second registration of these files or names (another library embedding the
  // googleapis protos) would abort here, when the pool is built.
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  const auto* status = pool->FindMessageTypeByName("google.rpc.Status");
  const auto* bad_request = pool->FindMessageTypeByName("google.rpc.BadRequest");
  ASSERT_NE(status, nullptr);
  ASSERT_NE(bad_request, nullptr);
  EXPECT_EQ(status, google::rpc::Status::descriptor());
  EXPECT_EQ(status->file()->name(), "google/rpc/status.proto");
  EXPECT_EQ(bad_request->file()->name(), "google/rpc/error_details.proto");
  // The public field numbers.
  EXPECT_EQ(status->FindFieldByName("code")->number(), 1);
  EXPECT_EQ(status->FindFieldByName("message")->number(), 2);
  EXPECT_EQ(status->FindFieldByName("details")->number(), 3);
  EXPECT_EQ(bad_request->FindFieldByName("field_violations")->number(), 1);
  const auto* violation = bad_request->FindNestedTypeByName("FieldViolation");
  EXPECT_EQ(violation->FindFieldByName("field")->number(), 1);
  EXPECT_EQ(violation->FindFieldByName("description")->number(), 2);
  EXPECT_EQ(std::string(kBadRequestTypeUrl),
            "type.googleapis.com/" + google::rpc::BadRequest::descriptor()->full_name());
}

TEST(StatusDetailsTest, ToStatusAttachesOneViolationPerFieldError) {
  FieldErrors errors;
  errors.Add("metadata.name", "Required value");
  errors.Add("resource.labelSelector.matchLabels", "Invalid value: \"\": must not be empty");
  errors.Add("", "a problem of no one field");
  absl::Status s = errors.ToStatus("Workspace \"x\"");
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  // The message is unchanged.
  EXPECT_EQ(s.message(),
            "Workspace \"x\" is invalid: metadata.name: Required value; "
            "resource.labelSelector.matchLabels: Invalid value: \"\": must not be empty; "
            "a problem of no one field");
  EXPECT_THAT(FieldViolations(s), ElementsAre(Violation("metadata.name", "Required value"),
                                              Violation("resource.labelSelector.matchLabels",
                                                        "Invalid value: \"\": must not be empty"),
                                              Violation("", "a problem of no one field")));
}

TEST(StatusDetailsTest, NoErrorsIsOkWithNoPayload) {
  FieldErrors errors;
  absl::Status s = errors.ToStatus("Workspace \"x\"");
  EXPECT_TRUE(s.ok());
  EXPECT_FALSE(s.GetPayload(kBadRequestTypeUrl).has_value());
  EXPECT_THAT(FieldViolations(s), IsEmpty());
}

TEST(StatusDetailsTest, ToGrpcStatusCarriesTheViolationsInAGoogleRpcStatus) {
  FieldErrors errors;
  errors.Add("metadata.name", "Required value");
  errors.Add("resource.count", "Invalid value: -1: must be greater than or equal to 0");
  grpc::Status g = ToGrpcStatus(errors.ToStatus("Workspace \"x\""));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(g.error_message(),
            "Workspace \"x\" is invalid: metadata.name: Required value; resource.count: "
            "Invalid value: -1: must be greater than or equal to 0");
  google::rpc::Status details = ParseDetails(g);
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), g.error_message());
  ASSERT_THAT(details.details(), SizeIs(1));
  EXPECT_EQ(details.details(0).type_url(), kBadRequestTypeUrl);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 2);
  EXPECT_EQ(bad_request.field_violations(1).field(), "resource.count");
  EXPECT_THAT(FieldViolations(g),
              ElementsAre(Violation("metadata.name", "Required value"),
                          Violation("resource.count",
                                    "Invalid value: -1: must be greater than or equal to 0")));
}

TEST(StatusDetailsTest, StatusesWithoutPayloadsCarryNoDetails) {
  for (const absl::Status& s : {absl::NotFoundError("workspace \"x\" not found"),
                                absl::InvalidArgumentError("page_size: must not be negative"),
                                absl::UnavailableError("store closed")}) {
    grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(s.code()));
    EXPECT_EQ(g.error_message(), s.message());
    EXPECT_EQ(g.error_details(), "") << s;
    EXPECT_THAT(FieldViolations(g), IsEmpty());
  }
  grpc::Status ok = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.error_details(), "");
  EXPECT_EQ(ErrorDetails(absl::OkStatus(), ""), "");
}

TEST(StatusDetailsTest, OtherPayloadsTravelAsAnyToo) {
  absl::Status s = absl::FailedPreconditionError("not yet");
  google::rpc::BadRequest bad_request;
  auto* v = bad_request.add_field_violations();
  v->set_field("spec.x");
  v->set_description("set it first");
  s.SetPayload(kBadRequestTypeUrl, absl::Cord(bad_request.SerializeAsString()));
  s.SetPayload("type.googleapis.com/google.rpc.ErrorInfo", absl::Cord("opaque"));
  grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  google::rpc::Status details = ParseDetails(g);
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  ASSERT_THAT(details.details(), SizeIs(2));
  std::vector<std::string> urls = {details.details(0).type_url(), details.details(1).type_url()};
  EXPECT_THAT(urls, ::testing::UnorderedElementsAre(std::string(kBadRequestTypeUrl),
                                                    "type.googleapis.com/google.rpc.ErrorInfo"));
  EXPECT_THAT(FieldViolations(g), ElementsAre(Violation("spec.x", "set it first")));
}

TEST(StatusDetailsTest, APayloadThatDoesNotFitIsLeftOut) {
  absl::Status s = absl::InternalError("boom");
  s.SetPayload("type.googleapis.com/example.Huge", absl::Cord(std::string(kMaxErrorDetails, 'x')));
  grpc::Status g = ToGrpcStatus(s);
  EXPECT_EQ(g.error_details(), "");  // Nothing fit: no details at all.
  s.SetPayload("type.googleapis.com/example.Small", absl::Cord("y"));
  g = ToGrpcStatus(s);
  google::rpc::Status details = ParseDetails(g);
  ASSERT_THAT(details.details(), SizeIs(1));
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/example.Small");
  EXPECT_LE(g.error_details().size(), kMaxErrorDetails);
}

TEST(StatusDetailsTest, AtMost64ViolationsTheLastSayingHowManyMore) {
  FieldErrors errors;
  for (int i = 0; i < 100; ++i) errors.Add(absl::StrCat("metadata.labels[k", i, "]"), "bad");
  grpc::Status g = ToGrpcStatus(errors.ToStatus("Workspace \"x\""));
  std::vector<FieldError> got = FieldViolations(g);
  ASSERT_THAT(got, SizeIs(kMaxFieldViolations));
  EXPECT_THAT(got[0], Violation("metadata.labels[k0]", "bad"));
  EXPECT_THAT(got[62], Violation("metadata.labels[k62]", "bad"));
  EXPECT_THAT(got[63], Violation("", "37 more field errors not shown"));
  EXPECT_LE(g.error_details().size(), kMaxErrorDetails);

  // Exactly 64 fit whole, with no marker.
  FieldErrors exactly;
  for (int i = 0; i < 64; ++i) exactly.Add(absl::StrCat("f", i), "bad");
  got = FieldViolations(exactly.ToStatus("x"));
  ASSERT_THAT(got, SizeIs(64));
  EXPECT_THAT(got[63], Violation("f63", "bad"));
}

TEST(StatusDetailsTest, ViolationsStopAtTheByteBound) {
  FieldErrors errors;
  // Each message is at its own bound (1 KiB), so only one fits the BadRequest.
  for (int i = 0; i < 10; ++i) errors.Add(absl::StrCat("f", i), std::string(5000, 'm'));
  absl::Status s = errors.ToStatus("Workspace \"x\"");
  EXPECT_LE(s.GetPayload(kBadRequestTypeUrl)->size(), kMaxBadRequest);
  std::vector<FieldError> got = FieldViolations(s);
  ASSERT_GE(got.size(), 2u);
  EXPECT_EQ(got[0].path, "f0");
  EXPECT_EQ(got[0].message, Abbreviate(std::string(5000, 'm'), kMaxFieldErrorMessage));
  EXPECT_THAT(got.back(),
              Violation("", absl::StrCat(10 - (got.size() - 1), " more field errors not shown")));

  grpc::Status g = ToGrpcStatus(s);
  EXPECT_LE(g.error_details().size(), kMaxErrorDetails);
  EXPECT_LE(WireSize(g.error_message()), kMaxErrorMessageWithDetails + 32);
  EXPECT_EQ(FieldViolations(g).size(), got.size());
  // Message and details together stay well under a client's 8 KiB metadata limit.
  EXPECT_LE(WireSize(g.error_message()) + g.error_details().size(), 6 * 1024 + 64);
}

TEST(StatusDetailsTest, MessagesAreBoundedByTheirPercentEncodedSize) {
  // 'é' is two bytes, each sent as three ("%C3%A9"): 3000 of them are 18,000 bytes on
  // the wire, more than a client accepts.
  std::string accents;
  for (int i = 0; i < 3000; ++i) accents += "\xC3\xA9";
  grpc::Status g = ToGrpcStatus(absl::InvalidArgumentError(accents));
  EXPECT_LE(WireSize(g.error_message()), kMaxErrorMessage + 32);
  EXPECT_THAT(g.error_message(), ::testing::HasSubstr("(6000 bytes)"));
  // Never cut inside a character.
  const std::string kept = g.error_message().substr(0, g.error_message().find("..."));
  EXPECT_EQ(kept.size() % 2, 0u);
  // Printable ASCII counts one byte each, as before.
  g = ToGrpcStatus(absl::InvalidArgumentError(std::string(kMaxErrorMessage, 'a')));
  EXPECT_EQ(g.error_message(), std::string(kMaxErrorMessage, 'a'));
  g = ToGrpcStatus(absl::InvalidArgumentError(std::string(kMaxErrorMessage + 1, 'a')));
  EXPECT_THAT(g.error_message(), ::testing::EndsWith("...(4097 bytes)"));

  FieldErrors errors;
  for (int i = 0; i < 50; ++i) errors.Add(absl::StrCat("f", i), accents);
  g = ToGrpcStatus(errors.ToStatus("x"));
  EXPECT_LE(WireSize(g.error_message()) + g.error_details().size(), 6 * 1024 + 64);
  EXPECT_FALSE(FieldViolations(g).empty());
}

TEST(StatusDetailsTest, InvalidUtf8IsReplacedSoTheDetailsStillParse) {
  FieldErrors errors;
  errors.Add("metadata.labels[\xff]", "Invalid value: \"\xC3\x28\": bad \xE2\x82\xAC");
  grpc::Status g = ToGrpcStatus(errors.ToStatus("Workspace \"\xC0\xAF\""));
  // Proto3 parsers refuse strings that are not UTF-8; these parse.
  google::rpc::Status details = ParseDetails(g);
  EXPECT_EQ(details.message(),
            "Workspace \"??\" is invalid: metadata.labels[?]: Invalid value: \"?(\": bad "
            "\xE2\x82\xAC");
  EXPECT_THAT(
      FieldViolations(g),
      ElementsAre(Violation("metadata.labels[?]", "Invalid value: \"?(\": bad \xE2\x82\xAC")));
}

TEST(StatusDetailsTest, FieldViolationsOfGarbageIsEmpty) {
  const grpc::StatusCode kCode = grpc::StatusCode::INVALID_ARGUMENT;
  EXPECT_THAT(FieldViolations(grpc::Status::OK), IsEmpty());
  EXPECT_THAT(FieldViolations(grpc::Status(kCode, "m")), IsEmpty());
  EXPECT_THAT(FieldViolations(grpc::Status(kCode, "m", "\xff\xff\xff\xff")), IsEmpty());
  EXPECT_THAT(FieldViolations(grpc::Status(kCode, "m", std::string("\x1a\x05\x0a", 3))), IsEmpty());

  // A well-formed status whose details are not (all) BadRequests.
  google::rpc::Status details;
  details.set_code(3);
  google::protobuf::Any* other = details.add_details();
  other->set_type_url("type.googleapis.com/google.rpc.ErrorInfo");
  other->set_value(
      "\x0a\x03"
      "abc");
  google::protobuf::Any* broken = details.add_details();
  broken->set_type_url(std::string(kBadRequestTypeUrl));
  broken->set_value("\x0a\xff\xff\xff");  // A length past the end.
  EXPECT_THAT(FieldViolations(grpc::Status(kCode, "m", details.SerializeAsString())), IsEmpty());

  // Every prefix of a real one: some parse, none crash.
  FieldErrors errors;
  errors.Add("metadata.name", "Required value");
  const std::string real = ToGrpcStatus(errors.ToStatus("x")).error_details();
  for (size_t n = 0; n < real.size(); ++n) {
    std::vector<FieldError> got = FieldViolations(grpc::Status(kCode, "m", real.substr(0, n)));
    EXPECT_LE(got.size(), 1u);
  }
  EXPECT_THAT(FieldViolations(grpc::Status(kCode, "m", real)),
              ElementsAre(Violation("metadata.name", "Required value")));

  // The absl side: a payload that is not a BadRequest.
  absl::Status s = absl::InvalidArgumentError("m");
  s.SetPayload(kBadRequestTypeUrl, absl::Cord("\x0a\xff"));
  EXPECT_THAT(FieldViolations(s), IsEmpty());
}

TEST(StatusDetailsTest, ABadRequestIsFoundWhateverTheTypeUrlsHost) {
  google::rpc::Status details;
  details.set_code(3);
  google::rpc::BadRequest bad_request;
  auto* v = bad_request.add_field_violations();
  v->set_field("a.b");
  v->set_description("c");
  google::protobuf::Any* any = details.add_details();
  any->PackFrom(bad_request, "example.com/types");
  EXPECT_EQ(any->type_url(), "example.com/types/google.rpc.BadRequest");
  EXPECT_THAT(FieldViolations(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "m",
                                           details.SerializeAsString())),
              ElementsAre(Violation("a.b", "c")));
}

}  // namespace
}  // namespace kaito
