#include "common/label_selector.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kaito {
namespace {

google::protobuf::Map<std::string, std::string> Labels(
    std::initializer_list<std::pair<const std::string, std::string>> l) {
  google::protobuf::Map<std::string, std::string> m;
  for (const auto& [k, v] : l) m[k] = v;
  return m;
}

TEST(LabelSelectorTest, EmptyMatchesEverything) {
  auto s = LabelSelectorMatcher::Parse("");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->Matches(Labels({})));
}

TEST(LabelSelectorTest, EqualityAndSetOperators) {
  auto s = LabelSelectorMatcher::Parse("app=phi, tier != dev,env in (prod, staging),!legacy,gpu");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->requirements().size(), 5u);
  EXPECT_TRUE(s->Matches(Labels({{"app", "phi"}, {"env", "prod"}, {"gpu", ""}})));
  EXPECT_FALSE(s->Matches(Labels({{"app", "phi"}, {"env", "prod"}})));  // no gpu
  EXPECT_FALSE(s->Matches(Labels({{"app", "phi"}, {"env", "prod"}, {"gpu", "1"}, {"tier", "dev"}})));
  EXPECT_FALSE(s->Matches(Labels({{"app", "phi"}, {"env", "qa"}, {"gpu", "1"}})));
  EXPECT_FALSE(s->Matches(Labels({{"app", "phi"}, {"env", "prod"}, {"gpu", "1"}, {"legacy", "y"}})));
  auto notin = LabelSelectorMatcher::Parse("env notin (a,b),x==y");
  ASSERT_TRUE(notin.ok());
  EXPECT_TRUE(notin->Matches(Labels({{"x", "y"}})));
  EXPECT_FALSE(notin->Matches(Labels({{"x", "y"}, {"env", "a"}})));
}

TEST(LabelSelectorTest, RejectsMalformed) {
  for (const char* bad : {"a=b,,c", "env in (a", "env foo (a)", "-bad-=x", "a=b c", "x in ()"}) {
    EXPECT_EQ(LabelSelectorMatcher::Parse(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(LabelSelectorTest, SetOperatorsNeedAValueAsInKubernetes) {
  for (const char* bad : {"x in ()", "x notin ()", "x notin ( )", "x NOTIN ()"}) {
    auto s = LabelSelectorMatcher::Parse(bad);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("needs at least one value"))
        << bad;
  }
  // An empty value among others is one of the values.
  auto s = LabelSelectorMatcher::Parse("x notin (a,)");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->requirements()[0].values, (std::vector<std::string>{"a", ""}));
}

TEST(LabelSelectorTest, FromProtoReportsEveryProblem) {
  v1::LabelSelector sel;
  (*sel.mutable_match_labels())["ok"] = "fine";
  (*sel.mutable_match_labels())["bad key!"] = "v";
  auto* e = sel.add_match_expressions();
  e->set_key("k");
  e->set_operator_("Maybe");
  auto* e2 = sel.add_match_expressions();
  e2->set_key("k2");
  e2->set_operator_("Exists");
  e2->add_values("x");
  FieldErrors errors;
  LabelSelectorMatcher::FromProto(sel, "resource.labelSelector", errors);
  ASSERT_EQ(errors.errors().size(), 3u);
  EXPECT_EQ(errors.errors()[0].path, "resource.labelSelector.matchLabels");
  EXPECT_EQ(errors.errors()[1].path, "resource.labelSelector.matchExpressions[0].operator");
  EXPECT_EQ(errors.errors()[2].path, "resource.labelSelector.matchExpressions[1].values");
}

}  // namespace
}  // namespace kaito
