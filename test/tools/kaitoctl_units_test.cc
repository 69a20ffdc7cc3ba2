// kaitoctl's small pure pieces: flag durations, how a failed call is reported, and what
// `wait --for` means.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tools/kaitoctl/durations.h"
#include "tools/kaitoctl/server_errors.h"
#include "tools/kaitoctl/wait_condition.h"

namespace kaito::ctl {
namespace {

using ::testing::HasSubstr;

TEST(DurationsTest, KubectlForms) {
  EXPECT_EQ(*ParseFlagDuration("--request-timeout", "5s"), absl::Seconds(5));
  EXPECT_EQ(*ParseFlagDuration("--request-timeout", "1m"), absl::Minutes(1));
  EXPECT_EQ(*ParseFlagDuration("--request-timeout", "1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseFlagDuration("--request-timeout", "250ms"), absl::Milliseconds(250));
  EXPECT_EQ(*ParseFlagDuration("--request-timeout", "30"), absl::Seconds(30)) << "seconds";
  EXPECT_EQ(*ParseFlagDuration("--request-timeout", "0"), absl::ZeroDuration());
  absl::StatusOr<absl::Duration> bad = ParseFlagDuration("--request-timeout", "soon");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("--request-timeout: invalid duration \"soon\""));
  EXPECT_FALSE(ParseFlagDuration("--timeout", "-5s").ok());
  EXPECT_FALSE(ParseFlagDuration("--timeout", "").ok());
}

TEST(ServerErrorsTest, ReasonsAreKubernetesReasons) {
  EXPECT_STREQ(KubernetesReason(grpc::NOT_FOUND), "NotFound");
  EXPECT_STREQ(KubernetesReason(grpc::ALREADY_EXISTS), "AlreadyExists");
  EXPECT_STREQ(KubernetesReason(grpc::ABORTED), "Conflict");
  EXPECT_STREQ(KubernetesReason(grpc::INVALID_ARGUMENT), "Invalid");
  EXPECT_STREQ(KubernetesReason(grpc::PERMISSION_DENIED), "Forbidden");
  EXPECT_STREQ(KubernetesReason(grpc::UNAUTHENTICATED), "Unauthorized");
  EXPECT_STREQ(KubernetesReason(grpc::RESOURCE_EXHAUSTED), "TooManyRequests");
  EXPECT_STREQ(KubernetesReason(grpc::UNAVAILABLE), "ServiceUnavailable");
  EXPECT_STREQ(KubernetesReason(grpc::DEADLINE_EXCEEDED), "Timeout");
  EXPECT_STREQ(KubernetesReason(grpc::FAILED_PRECONDITION), "Conflict");
  EXPECT_STREQ(KubernetesReason(grpc::OUT_OF_RANGE), "Expired");
  EXPECT_STREQ(KubernetesReason(grpc::UNIMPLEMENTED), "MethodNotAllowed");
  EXPECT_STREQ(KubernetesReason(grpc::INTERNAL), "InternalError");
}

TEST(ServerErrorsTest, WhatTheServerSaidAndWhatWentWrongHere) {
  CallFacts facts;
  facts.server = "127.0.0.1:1";
  facts.timeout = absl::Seconds(5);
  EXPECT_EQ(FailureLine(grpc::Status(grpc::NOT_FOUND, "workspaces \"x\" not found"), facts),
            "Error from server (NotFound): workspaces \"x\" not found");
  EXPECT_EQ(FailureLine(grpc::Status(grpc::INVALID_ARGUMENT, "bad"), facts, "workspace/x"),
            "Error from server (Invalid): workspace/x: bad");
  // The server answered UNAVAILABLE itself: its word.
  EXPECT_EQ(FailureLine(grpc::Status(grpc::UNAVAILABLE, "store down"), facts),
            "Error from server (ServiceUnavailable): store down");
  facts.connected = false;
  EXPECT_EQ(FailureLine(grpc::Status(grpc::UNAVAILABLE, "failed to connect"), facts),
            "error: cannot connect to the server at 127.0.0.1:1: failed to connect");
  facts.connected = true;
  // The server's own DEADLINE_EXCEEDED, before ours passed.
  EXPECT_EQ(FailureLine(grpc::Status(grpc::DEADLINE_EXCEEDED, "store slow"), facts),
            "Error from server (Timeout): store slow");
  facts.deadline_passed = true;
  EXPECT_EQ(FailureLine(grpc::Status(grpc::DEADLINE_EXCEEDED, "Deadline Exceeded"), facts),
            "error: the server at 127.0.0.1:1 did not answer within 5s (--request-timeout)");
  EXPECT_EQ(FailureLine(grpc::Status(grpc::UNIMPLEMENTED, ""), facts),
            "Error from server (MethodNotAllowed): the server does not serve this call (an older "
            "kaito-server?)");
}

Json Workspace(int64_t generation, const std::string& status, int64_t observed) {
  Json ws = Json::parse(R"({"metadata": {"name": "w"}, "status": {"state": "Ready",
      "conditions": [{"type": "ResourceReady", "status": "True"}]}})");
  ws["metadata"]["generation"] = generation;
  Json c = {{"type", "WorkspaceReady"}, {"status", status}};
  if (observed != 0) c["observedGeneration"] = observed;
  ws["status"]["conditions"].push_back(c);
  return ws;
}

TEST(WaitConditionTest, Conditions) {
  absl::StatusOr<WaitCondition> c = ParseWaitCondition("condition=WorkspaceReady");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kind, WaitCondition::Kind::kCondition);
  EXPECT_TRUE(ConditionMet(*c, Workspace(1, "True", 1)));
  EXPECT_FALSE(ConditionMet(*c, Workspace(1, "False", 1)));
  EXPECT_FALSE(ConditionMet(*c, Workspace(2, "True", 1))) << "older than the spec";
  EXPECT_TRUE(ConditionMet(*c, Workspace(2, "True", 0))) << "no observedGeneration";
  EXPECT_FALSE(ConditionMet(*c, Json::parse(R"({"metadata": {"name": "w"}})")));

  c = ParseWaitCondition("condition=workspaceready=false");
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(ConditionMet(*c, Workspace(1, "False", 1))) << "case-insensitive, as kubectl";
  EXPECT_FALSE(ConditionMet(*c, Workspace(1, "True", 1)));
}

TEST(WaitConditionTest, DeleteAndJsonPath) {
  absl::StatusOr<WaitCondition> c = ParseWaitCondition("delete");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->kind, WaitCondition::Kind::kDelete);
  EXPECT_FALSE(ConditionMet(*c, Workspace(1, "True", 1)));

  c = ParseWaitCondition("jsonpath={.status.state}=Ready");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(ConditionMet(*c, Workspace(1, "True", 1)));
  c = ParseWaitCondition("jsonpath=.status.state=Pending");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(ConditionMet(*c, Workspace(1, "True", 1)));
  c = ParseWaitCondition("jsonpath={.status.conditions[?(@.type==\"ResourceReady\")].status}=True");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(ConditionMet(*c, Workspace(1, "True", 1)));
  c = ParseWaitCondition("jsonpath={.status.endpoint}");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->value.has_value());
  EXPECT_FALSE(ConditionMet(*c, Workspace(1, "True", 1))) << "nothing there";
}

TEST(WaitConditionTest, BadSpecs) {
  EXPECT_THAT(ParseWaitCondition("ready").status().message(),
              HasSubstr("unrecognized condition: \"ready\""));
  EXPECT_FALSE(ParseWaitCondition("condition=").ok());
  EXPECT_FALSE(ParseWaitCondition("condition=Ready=").ok());
  EXPECT_FALSE(ParseWaitCondition("jsonpath={.a[}=x").ok());
  EXPECT_FALSE(ParseWaitCondition("").ok());
}

}  // namespace
}  // namespace kaito::ctl
