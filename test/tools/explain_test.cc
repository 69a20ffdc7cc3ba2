#include "tools/kaitoctl/explain.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kaito/v1/config.pb.h"

namespace kaito::ctl {
namespace {

using ::testing::HasSubstr;

const ResourceType& Workspaces() { return *FindResourceType("workspace"); }

std::string Explained(absl::string_view path, bool recursive = false) {
  absl::StatusOr<std::string> text = Explain(Workspaces(), DocumentedApiPool(), path, recursive);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

TEST(ExplainTest, AKindListsItsFields) {
  const std::string out = Explained("");
  EXPECT_THAT(out, ::testing::StartsWith("GROUP:      kaito.sh\nKIND:       Workspace\n"
                                         "VERSION:    v1beta1\n\nDESCRIPTION:\n"));
  EXPECT_THAT(out, HasSubstr("\nFIELDS:\n  apiVersion\t<string>\n"));
  EXPECT_THAT(out, HasSubstr("  metadata\t<ObjectMeta>\n"));
  EXPECT_THAT(out, HasSubstr("  inference\t<InferenceSpec>\n"));
  EXPECT_THAT(out, HasSubstr("  terminationGracePeriodSeconds\t<integer>\n"));
}

TEST(ExplainTest, DescriptionsComeFromTheProtoComments) {
  EXPECT_THAT(Explained(""), HasSubstr("  status\t<WorkspaceStatus>\n    Written only by the "
                                       "controller; ignored on Create and Update.\n"));
}

TEST(ExplainTest, AFieldPath) {
  const std::string out = Explained("status.conditions");
  EXPECT_THAT(out, HasSubstr("FIELD: conditions <[]Condition>\n"));
  EXPECT_THAT(out, HasSubstr("  type\t<string>\n"));
  EXPECT_THAT(out, HasSubstr("  lastTransitionTime\t<string>\n")) << "a Timestamp is a string";
  EXPECT_THAT(Explained("inference.template"), HasSubstr("FIELD: template <Object>\n"));
  EXPECT_THAT(Explained("metadata.labels"), HasSubstr("FIELD: labels <map[string]string>\n"));
  const std::string scalar = Explained("resource.instanceType");
  EXPECT_THAT(scalar, HasSubstr("FIELD: instanceType <string>\n"));
  EXPECT_THAT(scalar, ::testing::Not(HasSubstr("FIELDS:")));
}

TEST(ExplainTest, Recursive) {
  const std::string out = Explained("", true);
  EXPECT_THAT(out, HasSubstr("  metadata\t<ObjectMeta>\n    name\t<string>\n"));
  EXPECT_THAT(out, HasSubstr("      type\t<string>\n")) << "status.conditions.type";
}

TEST(ExplainTest, UnknownFieldIsNamed) {
  absl::StatusOr<std::string> text =
      Explain(Workspaces(), DocumentedApiPool(), "resource.nope", false);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "field \"nope\" does not exist");
  text = Explain(Workspaces(), DocumentedApiPool(), "resource.instanceType.deeper", false);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().message(), "field \"deeper\" does not exist");
}

TEST(ExplainTest, WorksWithoutComments) {
  // The descriptors compiled into the program have no comments: fields and types still print.
  absl::StatusOr<std::string> text = Explain(
      *FindResourceType("configmap"), *v1::ConfigMap::descriptor()->file()->pool(), "", false);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, ::testing::StartsWith("KIND:       ConfigMap\nVERSION:    v1\n"));
  EXPECT_THAT(*text, HasSubstr("DESCRIPTION:\n    <empty>\n"));
  EXPECT_THAT(*text, HasSubstr("  binaryData\t<map[string]string>\n"));
}

TEST(ExplainTest, EveryKindHasADescriptor) {
  for (const ResourceType& type : ResourceTypes()) {
    EXPECT_TRUE(Explain(type, DocumentedApiPool(), "", false).ok()) << type.plural;
  }
}

}  // namespace
}  // namespace kaito::ctl
