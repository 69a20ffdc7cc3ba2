#include "tools/kaitoctl/jsonpath.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kaito::ctl {
namespace {

using ::testing::HasSubstr;

// A List as `get workspaces -o json` prints it.
const Json& WorkspaceList() {
  static const Json list = Json::parse(R"({
    "apiVersion": "v1",
    "items": [
      {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace",
       "metadata": {"name": "phi", "namespace": "default", "generation": 2,
                    "labels": {"kaito.sh/workspace": "phi", "app": "chat"}},
       "resource": {"instanceType": "Standard_NC24ads_A100_v4", "count": 1},
       "status": {"workerNodes": ["n1", "n2", "n3"],
                  "conditions": [{"type": "ResourceReady", "status": "True"},
                                 {"type": "WorkspaceReady", "status": "False",
                                  "reason": "Pending"}]}},
      {"apiVersion": "kaito.sh/v1beta1", "kind": "Workspace",
       "metadata": {"name": "llama", "namespace": "team-a", "generation": 7},
       "resource": {"instanceType": "Standard_NC96ads_A100_v4", "count": 2},
       "status": {"conditions": [{"type": "WorkspaceReady", "status": "True"}]}}
    ],
    "kind": "List",
    "metadata": {"resourceVersion": ""}
  })");
  return list;
}

std::string Exec(const std::string& text, const Json& data = WorkspaceList()) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse(text);
  EXPECT_TRUE(path.ok()) << path.status();
  if (!path.ok()) return "<parse error>";
  return path->Execute(data);
}

std::string ParseError(const std::string& text) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse(text);
  EXPECT_FALSE(path.ok()) << text << " parsed";
  return path.ok() ? "" : std::string(path.status().message());
}

TEST(JsonPathTest, FieldsAndLiteralText) {
  EXPECT_EQ(Exec("{.kind}"), "List");
  EXPECT_EQ(Exec("kind={.kind}!"), "kind=List!");
  EXPECT_EQ(Exec("{.items[0].metadata.name}"), "phi");
  EXPECT_EQ(Exec("{$.items[1].metadata.namespace}"), "team-a");
  EXPECT_EQ(Exec("{ .items[0].metadata.generation }"), "2") << "spaces inside braces";
  EXPECT_EQ(Exec("plain text"), "plain text");
  EXPECT_EQ(Exec("{\"\\n\"}{'\\t'}"), "\n\t");
}

TEST(JsonPathTest, WildcardsJoinResultsWithASpace) {
  EXPECT_EQ(Exec("{.items[*].metadata.name}"), "phi llama");
  EXPECT_EQ(Exec("{.items.*.metadata.name}"), "phi llama");
  EXPECT_EQ(Exec("{.items[0].metadata.labels.*}"), "phi chat");
}

TEST(JsonPathTest, RangeRunsItsBodyPerValue) {
  EXPECT_EQ(Exec("{range .items[*]}{.metadata.name}{\"\\t\"}{.resource.count}{\"\\n\"}{end}"),
            "phi\t1\nllama\t2\n");
  // Nested ranges, and `$` still meaning the whole input inside them.
  EXPECT_EQ(Exec("{range .items[*]}{.metadata.name}:{range .status.conditions[*]}"
                 "[{.type}]{end}{$.kind};{end}"),
            "phi:[ResourceReady][WorkspaceReady]List;llama:[WorkspaceReady]List;");
  EXPECT_EQ(Exec("{range .items[*]}{@.metadata.name} {end}"), "phi llama ");
}

TEST(JsonPathTest, IndexesAndSlices) {
  EXPECT_EQ(Exec("{.items[-1].metadata.name}"), "llama");
  EXPECT_EQ(Exec("{.items[0].status.workerNodes[0,2]}"), "n1 n3");
  EXPECT_EQ(Exec("{.items[0].status.workerNodes[1:]}"), "n2 n3");
  EXPECT_EQ(Exec("{.items[0].status.workerNodes[:2]}"), "n1 n2");
  EXPECT_EQ(Exec("{.items[0].status.workerNodes[::2]}"), "n1 n3");
  EXPECT_EQ(Exec("{.items[0].status.workerNodes[-2:]}"), "n2 n3");
  EXPECT_EQ(Exec("{.items[5].metadata.name}"), "") << "past the end selects nothing";
  EXPECT_EQ(Exec("{.items[0].status.workerNodes[1:99]}"), "n2 n3") << "slices clamp";
}

TEST(JsonPathTest, Filters) {
  EXPECT_EQ(Exec("{.items[0].status.conditions[?(@.type==\"WorkspaceReady\")].status}"), "False");
  EXPECT_EQ(Exec("{.items[*].status.conditions[?(@.type=='WorkspaceReady')].status}"),
            "False True");
  EXPECT_EQ(Exec("{.items[0].status.conditions[?(@.type != \"WorkspaceReady\")].type}"),
            "ResourceReady");
  EXPECT_EQ(Exec("{.items[0].status.conditions[?(@.reason)].type}"), "WorkspaceReady")
      << "existence";
  EXPECT_EQ(Exec("{.items[?(@.resource.count > 1)].metadata.name}"), "llama");
  EXPECT_EQ(Exec("{.items[?(@.resource.count<=1)].metadata.name}"), "phi");
  EXPECT_EQ(Exec("{.items[?(@.metadata.generation>=2.5)].metadata.name}"), "llama");
  EXPECT_EQ(Exec("{.items[?(@.metadata.name == $.items[1].metadata.name)].resource.count}"), "2")
      << "a path on the right";
  EXPECT_EQ(Exec("{range .items[*]}{.status.conditions[?(@.type==\"WorkspaceReady\")].status}"
                 ",{end}"),
            "False,True,");
}

TEST(JsonPathTest, EscapedDotsAndQuotedNames) {
  EXPECT_EQ(Exec("{.items[0].metadata.labels.kaito\\.sh/workspace}"), "phi");
  EXPECT_EQ(Exec("{.items[0].metadata.labels['kaito.sh/workspace']}"), "phi");
  EXPECT_EQ(Exec("{.items[0].metadata['name','namespace']}"), "phi default");
}

TEST(JsonPathTest, RecursiveDescent) {
  EXPECT_EQ(Exec("{..instanceType}"), "Standard_NC24ads_A100_v4 Standard_NC96ads_A100_v4");
  EXPECT_EQ(Exec("{.items[1]..status}"),
            "{\"conditions\":[{\"type\":\"WorkspaceReady\","
            "\"status\":\"True\"}]} True");
}

TEST(JsonPathTest, ValuesPrintAsKubectlPrintsThem) {
  EXPECT_EQ(Exec("{.items[1].resource}"),
            "{\"instanceType\":\"Standard_NC96ads_A100_v4\",\"count\":2}")
      << "objects as compact JSON, fields in order";
  EXPECT_EQ(Exec("{.items[0].status.workerNodes}"), "[\"n1\",\"n2\",\"n3\"]");
  EXPECT_EQ(Exec("{.b}", Json::parse(R"({"b": true, "n": null, "f": 0.5})")), "true");
  EXPECT_EQ(Exec("{.n}", Json::parse(R"({"n": null})")), "null");
  EXPECT_EQ(Exec("{.f}", Json::parse(R"({"f": 0.5})")), "0.5");
  EXPECT_EQ(Exec("{.}", Json::parse(R"({"a": 1})")), "{\"a\":1}");
}

TEST(JsonPathTest, MissingFieldsPrintNothing) {
  EXPECT_EQ(Exec("[{.items[0].metadata.nope}]"), "[]");
  EXPECT_EQ(Exec("{.kind.deeper}"), "") << "a field of a string";
  EXPECT_EQ(Exec("{.items[0].metadata.name[0]}"), "") << "an index of a string";
}

TEST(JsonPathTest, BadTemplatesNameTheProblem) {
  EXPECT_EQ(ParseError("{.items["),
            "jsonpath template \"{.items[\": unclosed \"{\" at character 1");
  EXPECT_EQ(ParseError("{.items[}"),
            "jsonpath template \"{.items[}\": unclosed \"[\" at character 8");
  EXPECT_THAT(ParseError("{}"), HasSubstr("empty action \"{}\""));
  EXPECT_THAT(ParseError("{range .items[*]}{.a}"), HasSubstr("\"{range}\" without \"{end}\""));
  EXPECT_THAT(ParseError("{.a}{end}"), HasSubstr("\"{end}\" without \"{range}\""));
  EXPECT_THAT(ParseError("{items}"), HasSubstr("a path starts with \".\", \"$\" or \"@\""));
  EXPECT_THAT(ParseError("{.a[?(@.b ~ 1)]}"), HasSubstr("expected ==, !=, <, <=, > or >="));
  EXPECT_THAT(ParseError("{.a[?(@.b == )]}"), HasSubstr("expected a path or a value"));
  EXPECT_THAT(ParseError("{.a[x]}"), HasSubstr("expected an array index"));
  EXPECT_THAT(ParseError("{.a[::0]}"), HasSubstr("a slice's step must be positive"));
  EXPECT_THAT(ParseError("{\"abc}"), HasSubstr("unclosed \"{\""));
  EXPECT_THAT(ParseError("{\"a\\q\"}"), HasSubstr("unknown escape \"\\q\""));
  EXPECT_THAT(ParseError("{.a..}"), HasSubstr("expected a field name after \".\""));
  EXPECT_THAT(ParseError("{.a b}"), HasSubstr("unexpected \"b\""));
}

TEST(JsonPathTest, ExpressionsTakeKubectlsRelaxedForms) {
  const Json item = WorkspaceList()["items"][0];
  for (const char* form : {"{.metadata.name}", ".metadata.name", "metadata.name"}) {
    absl::StatusOr<JsonPath> path = JsonPath::ParseExpression(form);
    ASSERT_TRUE(path.ok()) << form << ": " << path.status();
    EXPECT_EQ(path->Execute(item), "phi") << form;
    EXPECT_EQ(path->text(), form);
  }
  absl::StatusOr<JsonPath> bad = JsonPath::ParseExpression("{.a}{.b}");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("expected one path"));
  EXPECT_FALSE(JsonPath::ParseExpression("").ok());
}

TEST(JsonPathTest, SelectReturnsTheValues) {
  absl::StatusOr<JsonPath> path = JsonPath::Parse("{.items[*].resource.count}");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->Select(WorkspaceList()), (std::vector<Json>{1, 2}));
  path = JsonPath::Parse("x{range .items[*]}{.metadata.name}{end}");
  ASSERT_TRUE(path.ok());
  EXPECT_EQ(path->Select(WorkspaceList()), (std::vector<Json>{"phi", "llama"}));
}

}  // namespace
}  // namespace kaito::ctl
