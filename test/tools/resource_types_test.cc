#include "tools/kaitoctl/resource_types.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kaito::ctl {
namespace {

using ::testing::HasSubstr;

TEST(ResourceTypesTest, EveryNameOfAWorkspace) {
  for (const char* name :
       {"workspaces", "workspace", "ws", "wk", "wks", "WS", "Workspaces", "workspaces.kaito.sh",
        "workspace.kaito.sh", "workspaces.v1beta1.kaito.sh"}) {
    const ResourceType* type = FindResourceType(name);
    ASSERT_NE(type, nullptr) << name;
    EXPECT_EQ(type->plural, "workspaces") << name;
  }
  EXPECT_EQ(FindResourceType("workspaces.kaito.io"), nullptr);
  EXPECT_EQ(FindResourceType("configmaps.kaito.sh"), nullptr) << "the core group has no suffix";
  EXPECT_EQ(FindResourceType("cm")->plural, "configmaps");
  EXPECT_EQ(FindResourceType("no")->plural, "nodes");
  EXPECT_EQ(FindResourceType("nc")->plural, "nodeclaims");
  EXPECT_EQ(FindResourceType("wl")->plural, "workloads");
}

TEST(ResourceTypesTest, NamesAndVersions) {
  const ResourceType& ws = *FindResourceType("ws");
  EXPECT_EQ(ws.NamePrefix(), "workspace.kaito.sh");
  EXPECT_EQ(ws.ApiVersion(), "kaito.sh/v1beta1");
  const ResourceType& secret = *FindResourceType("secret");
  EXPECT_EQ(secret.NamePrefix(), "secret");
  EXPECT_EQ(secret.ApiVersion(), "v1");
  EXPECT_FALSE(FindResourceType("nodes")->namespaced);
}

TEST(ResourceTypesTest, ArgumentForms) {
  auto sel = ParseResourceArgs({"ws", "a", "b"});
  ASSERT_TRUE(sel.ok()) << sel.status();
  ASSERT_EQ(sel->size(), 1u);
  EXPECT_EQ((*sel)[0].type->plural, "workspaces");
  EXPECT_EQ((*sel)[0].names, (std::vector<std::string>{"a", "b"}));

  sel = ParseResourceArgs({"ws/a", "workspaces.kaito.sh/b", "cm/c"});
  ASSERT_TRUE(sel.ok()) << sel.status();
  ASSERT_EQ(sel->size(), 3u);
  EXPECT_EQ((*sel)[1].type->plural, "workspaces");
  EXPECT_EQ((*sel)[1].names, (std::vector<std::string>{"b"}));
  EXPECT_EQ((*sel)[2].type->plural, "configmaps");

  sel = ParseResourceArgs({"ws,cm"});
  ASSERT_TRUE(sel.ok()) << sel.status();
  ASSERT_EQ(sel->size(), 2u);
  EXPECT_TRUE((*sel)[0].names.empty());

  sel = ParseResourceArgs({"bogus"});
  ASSERT_FALSE(sel.ok());
  EXPECT_EQ(sel.status().message(), "the server doesn't have a resource type \"bogus\"");
  sel = ParseResourceArgs({"bogus/x"});
  ASSERT_FALSE(sel.ok());
  EXPECT_EQ(sel.status().message(), "the server doesn't have a resource type \"bogus\"");
  EXPECT_THAT(ParseResourceArgs({"ws/a", "b"}).status().message(),
              HasSubstr("no need to specify a resource type as a separate argument"));
  EXPECT_THAT(ParseResourceArgs({"ws", "ws/a"}).status().message(),
              HasSubstr("no need to specify a resource type as a separate argument"));
  EXPECT_FALSE(ParseResourceArgs({"ws/"}).ok());
  EXPECT_FALSE(ParseResourceArgs({}).ok());
}

TEST(ResourceTypesTest, ApiResourcesHasKubectlsColumns) {
  const std::string table = FormatApiResources(false);
  EXPECT_THAT(table, ::testing::StartsWith("NAME         SHORTNAMES   APIVERSION         "
                                           "NAMESPACED   KIND\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex(
                         "\nworkspaces +ws,wk,wks +kaito.sh/v1beta1 +true +Workspace\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("\nconfigmaps +cm +v1 +true +ConfigMap\n"));
  EXPECT_THAT(table, ::testing::ContainsRegex("\nnodes +no +v1 +false +Node\n"));
  EXPECT_THAT(FormatApiResources(true), HasSubstr("configmaps\n"));
  EXPECT_THAT(FormatApiResources(true), HasSubstr("workspaces.kaito.sh\n"));
}

}  // namespace
}  // namespace kaito::ctl
