#include "tools/kaitoctl/printers.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kaito::ctl {
namespace {

v1::Workspace Sample() {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name("workspace-phi-4");
  ws.mutable_metadata()->set_namespace_("default");
  ws.mutable_metadata()->mutable_creation_timestamp()->set_seconds(1000);
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  return ws;
}

TEST(PrintersTest, UnknownUntilConditionIsSet) {
  v1::Workspace ws = Sample();
  auto row = WorkspaceRow(ws, absl::FromUnixSeconds(1042), false, false);
  EXPECT_EQ(row, (std::vector<std::string>{"workspace-phi-4", "Standard_NC24ads_A100_v4",
                                           "Unknown", "Unknown", "Unknown", "42s"}));
  auto* c = ws.mutable_status()->add_conditions();
  c->set_type("ResourceReady");
  c->set_status("True");
  auto* s = ws.mutable_status()->add_conditions();
  s->set_type("WorkspaceSucceeded");
  s->set_status("False");
  row = WorkspaceRow(ws, absl::FromUnixSeconds(1042), false, false);
  EXPECT_EQ(row[2], "True");
  EXPECT_EQ(row[3], "Unknown");
  EXPECT_EQ(row[4], "False") << "WORKSPACEREADY falls back to WorkspaceSucceeded";
}

TEST(PrintersTest, HeadersMatchTheSeedDocument) {
  EXPECT_EQ(WorkspaceHeaders(false, false),
            (std::vector<std::string>{"NAME", "INSTANCE", "RESOURCEREADY", "INFERENCEREADY",
                                      "WORKSPACEREADY", "AGE"}));
  auto wide = WorkspaceHeaders(true, true);
  EXPECT_EQ(wide.front(), "NAMESPACE");
  EXPECT_EQ(wide.size(), 12u);
  EXPECT_EQ(wide[6], "JOBSTARTED");
}

TEST(PrintersTest, TableIsAligned) {
  EXPECT_EQ(FormatTable({{"NAME", "AGE"}, {"a-long-name", "1s"}}),
            "NAME          AGE\na-long-name   1s\n");
}

TEST(PrintersTest, HumanAgeLikeKubectl) {
  EXPECT_EQ(HumanAge(absl::Seconds(5)), "5s");
  EXPECT_EQ(HumanAge(absl::Seconds(119)), "119s");
  EXPECT_EQ(HumanAge(absl::Seconds(310)), "5m10s");
  EXPECT_EQ(HumanAge(absl::Minutes(45)), "45m");
  EXPECT_EQ(HumanAge(absl::Minutes(200)), "3h20m");
  EXPECT_EQ(HumanAge(absl::Hours(20)), "20h");
  EXPECT_EQ(HumanAge(absl::Hours(76)), "3d4h");
  EXPECT_EQ(HumanAge(absl::Hours(24 * 12)), "12d");
  EXPECT_EQ(HumanAge(absl::Hours(24 * 800)), "2y");
  EXPECT_EQ(HumanAge(absl::Seconds(-3)), "0s");
}

TEST(PrintersTest, DescribeShowsSpecAndConditions) {
  v1::Workspace ws = Sample();
  auto* c = ws.mutable_status()->add_conditions();
  c->set_type("ResourceReady");
  c->set_status("False");
  c->set_reason("NodeClaimNotReady");
  c->set_message("waiting for 1 node");
  std::string text = DescribeWorkspace(ws, absl::FromUnixSeconds(2000));
  EXPECT_THAT(text, ::testing::ContainsRegex("^Name: +workspace-phi-4\n"));
  EXPECT_NE(text.find("instanceType: Standard_NC24ads_A100_v4"), std::string::npos) << text;
  EXPECT_NE(text.find("NodeClaimNotReady"), std::string::npos) << text;
  EXPECT_NE(text.find("waiting for 1 node"), std::string::npos) << text;
}

}  // namespace
}  // namespace kaito::ctl
