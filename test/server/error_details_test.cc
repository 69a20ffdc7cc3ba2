// End to end through a real server on a loopback port: a validation error's
// `google.rpc.BadRequest` comes back in the `grpc-status-details-bin` trailer, with the
// same problems as the message; other errors carry no details; and many problems stay
// within what a client accepts, so the channel keeps working.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/field_errors.h"
#include "common/k8s_names.h"
#include "common/status_details.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "server/api_fixture.h"

namespace kaito {
void PrintTo(const FieldError& e, std::ostream* os) {
  *os << "{" << e.path << ", " << e.message << "}";
}
}  // namespace kaito

namespace kaito::server {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

auto Violation(const std::string& path, const std::string& message) {
  return ::testing::AllOf(Field(&FieldError::path, path), Field(&FieldError::message, message));
}

// The message `FieldErrors::ToStatus` writes for `violations`.
std::string MessageOf(const std::string& subject, const std::vector<FieldError>& violations) {
  std::string out = subject + " is invalid: ";
  for (size_t i = 0; i < violations.size(); ++i) {
    if (i > 0) out += "; ";
    out += violations[i].path + ": " + violations[i].message;
  }
  return out;
}

class ErrorDetailsTest : public ApiTest {
 protected:
  // CreateWorkspace, keeping the reply's trailing metadata.
  grpc::Status CreateKeepingTrailers(const v1::Workspace& ws,
                                     std::multimap<std::string, std::string>* trailers) {
    grpc::ClientContext ctx;
    v1::CreateWorkspaceRequest req;
    *req.mutable_workspace() = ws;
    v1::CreateWorkspaceResponse out;
    grpc::Status s = ws_->CreateWorkspace(&ctx, req, &out);
    for (const auto& [k, v] : ctx.GetServerTrailingMetadata()) {
      trailers->emplace(std::string(k.data(), k.size()), std::string(v.data(), v.size()));
    }
    return s;
  }
};

TEST_F(ErrorDetailsTest, MetadataProblemsComeBackAsFieldViolations) {
  v1::Workspace ws = MakeWorkspace("Bad_Name");
  ws.set_kind("Pod");
  (*ws.mutable_metadata()->mutable_labels())["app"] = "has space";
  std::multimap<std::string, std::string> trailers;
  grpc::Status s = CreateKeepingTrailers(ws, &trailers);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();

  // The trailer itself, as any gRPC client receives it.
  auto it = trailers.find("grpc-status-details-bin");
  ASSERT_NE(it, trailers.end());
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(it->second));
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(details.message(), s.error_message());
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.BadRequest");
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  EXPECT_EQ(bad_request.field_violations_size(), 3);

  // And through the helper, field by field, in the message's order.
  std::vector<FieldError> violations = FieldViolations(s);
  EXPECT_THAT(violations,
              ElementsAre(Violation("kind", "Invalid value: \"Pod\": must be Workspace"),
                          Violation("metadata.name", CheckDnsLabel("Bad_Name")),
                          Violation("metadata.labels[app]", CheckLabelValue("has space"))));
  EXPECT_EQ(s.error_message(), MessageOf("Workspace \"Bad_Name\"", violations));
  // Nothing was stored.
  v1::Workspace got;
  EXPECT_EQ(Get("Bad_Name", &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ErrorDetailsTest, SpecProblemsComeBackWithTheirJsonPaths) {
  v1::Workspace ws = MakeWorkspace("spec-problems");
  auto* selector = ws.mutable_resource()->mutable_label_selector();
  (*selector->mutable_match_labels())["bad key!"] = "x";
  auto* expression = selector->add_match_expressions();
  expression->set_key("zone");
  expression->set_operator_("Near");
  ws.mutable_resource()->set_count(-1);
  ws.set_termination_grace_period_seconds(-5);
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(ws, &out, /*dry_run=*/true);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  std::vector<FieldError> violations = FieldViolations(s);
  EXPECT_THAT(
      violations,
      ElementsAre(
          Violation("resource.labelSelector.matchLabels", CheckQualifiedName("bad key!")),
          Violation("resource.labelSelector.matchExpressions[0].operator",
                    "Unsupported value: \"Near\": supported values: \"In\", \"NotIn\", "
                    "\"Exists\", \"DoesNotExist\""),
          Violation("resource.count", "Invalid value: -1: must be greater than or equal to 0"),
          Violation("terminationGracePeriodSeconds",
                    "Invalid value: -5: must be greater than or equal to 0")));
  EXPECT_EQ(s.error_message(), MessageOf("Workspace \"spec-problems\"", violations));
}

TEST_F(ErrorDetailsTest, ErrorsWithoutFieldProblemsCarryNoDetails) {
  // NOT_FOUND, ALREADY_EXISTS, and an INVALID_ARGUMENT that is not a FieldErrors list.
  v1::Workspace got;
  grpc::Status not_found = Get("absent", &got);
  ASSERT_EQ(not_found.error_code(), grpc::StatusCode::NOT_FOUND);
  MustCreate(MakeWorkspace("twice"));
  std::multimap<std::string, std::string> trailers;
  grpc::Status exists = CreateKeepingTrailers(MakeWorkspace("twice"), &trailers);
  ASSERT_EQ(exists.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(trailers.count("grpc-status-details-bin"), 0u);
  grpc::Status bad_page;
  List("", "", -1, "", &bad_page);
  ASSERT_EQ(bad_page.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  for (const grpc::Status& s : {not_found, exists, bad_page}) {
    EXPECT_EQ(s.error_details(), "") << s.error_message();
    EXPECT_THAT(FieldViolations(s), IsEmpty());
  }
}

TEST_F(ErrorDetailsTest, ManyLongProblemsStayWithinTheClientsMetadataLimit) {
  // 300 labels, each value too long and not ASCII: each problem echoes its value (in a
  // message gRPC percent-encodes, three bytes a byte). Unbounded, the reply's trailer
  // would pass the client's 8 KiB and fail as RESOURCE_EXHAUSTED, and the channel's
  // next calls with it.
  v1::Workspace ws = MakeWorkspace("many-problems");
  std::string value;
  for (int i = 0; i < 40; ++i) value += "\xC3\xA9";  // é
  auto& labels = *ws.mutable_metadata()->mutable_labels();
  for (int i = 0; i < 300; ++i) labels["k" + std::to_string(i)] = value;
  v1::CreateWorkspaceResponse out;
  grpc::Status s = Create(ws, &out);
  ASSERT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  std::vector<FieldError> violations = FieldViolations(s);
  ASSERT_GE(violations.size(), 2u);
  ASSERT_LE(violations.size(), kMaxFieldViolations);
  for (size_t i = 0; i + 1 < violations.size(); ++i) {
    EXPECT_THAT(violations[i].path, ::testing::StartsWith("metadata.labels[k"));
    EXPECT_EQ(violations[i].message, CheckLabelValue(value));
  }
  EXPECT_THAT(violations.back(), Violation("", std::to_string(300 - (violations.size() - 1)) +
                                                   " more field errors not shown"));
  EXPECT_LE(s.error_details().size(), kMaxErrorDetails);
  // The channel still works.
  MustCreate(MakeWorkspace("after"));
}

}  // namespace
}  // namespace kaito::server
