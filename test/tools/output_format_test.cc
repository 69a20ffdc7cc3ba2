#include "tools/kaitoctl/output_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kaito/v1/config.pb.h"
#include "kaito/v1/presets.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito::ctl {
namespace {

using ::testing::HasSubstr;

const ResourceType& Workspaces() { return *FindResourceType("workspaces"); }

v1::Workspace Workspace(const std::string& name, const std::string& ns, int count) {
  v1::Workspace ws;
  ws.set_api_version("kaito.sh/v1beta1");
  ws.set_kind("Workspace");
  ws.mutable_metadata()->set_name(name);
  ws.mutable_metadata()->set_namespace_(ns);
  ws.mutable_metadata()->mutable_creation_timestamp()->set_seconds(1000);
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  ws.mutable_resource()->set_count(count);
  return ws;
}

PrintOptions Options(const std::string& output) {
  PrintOptions options;
  absl::StatusOr<OutputFormat> format = ParseOutputFormat(output);
  EXPECT_TRUE(format.ok()) << format.status();
  if (format.ok()) options.format = *format;
  options.now = absl::FromUnixSeconds(1042);
  return options;
}

class OutputFormatTest : public ::testing::Test {
 protected:
  void SetUp() override {
    phi_ = Workspace("phi", "default", 1);
    (*phi_.mutable_metadata()->mutable_labels())["tier"] = "gold";
    (*phi_.mutable_metadata()->mutable_labels())["app"] = "chat";
    llama_ = Workspace("llama", "team-a", 2);
  }
  std::vector<PrintedObject> Both() { return {ToPrinted(phi_), ToPrinted(llama_)}; }

  v1::Workspace phi_, llama_;
};

TEST_F(OutputFormatTest, FormatsByName) {
  for (const char* spec : {"json", "=json"}) {
    absl::StatusOr<OutputFormat> f = ParseOutputFormat(spec);
    ASSERT_TRUE(f.ok()) << spec;
    EXPECT_EQ(f->kind, OutputKind::kJson) << spec;
  }
  EXPECT_EQ(ParseOutputFormat("")->kind, OutputKind::kTable);
  EXPECT_EQ(ParseOutputFormat("wide")->kind, OutputKind::kWide);
  EXPECT_EQ(ParseOutputFormat("yaml")->kind, OutputKind::kYaml);
  EXPECT_EQ(ParseOutputFormat("name")->kind, OutputKind::kName);
  EXPECT_EQ(ParseOutputFormat("=jsonpath={.kind}")->kind, OutputKind::kJsonPath);
  absl::StatusOr<OutputFormat> bad = ParseOutputFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(),
              HasSubstr("unable to match a printer suitable for the output format \"xml\""));
  bad = ParseOutputFormat("jsonpath={.items[}");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("unclosed \"[\""));
  EXPECT_FALSE(ParseOutputFormat("custom-columns=NAME").ok());
  EXPECT_FALSE(ParseOutputFormat("custom-columns=").ok());
  EXPECT_FALSE(ParseOutputFormat("jsonpath").ok());
}

TEST_F(OutputFormatTest, ACollectionIsOneListInJson) {
  const std::string out = FormatObjects(Workspaces(), Both(), Options("json"), true);
  const Json list = Json::parse(out);
  EXPECT_EQ(list["apiVersion"], "v1");
  EXPECT_EQ(list["kind"], "List");
  ASSERT_EQ(list["items"].size(), 2u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "phi");
  EXPECT_EQ(list["metadata"]["resourceVersion"], "");
  EXPECT_EQ(out.substr(0, 24), "{\n  \"apiVersion\": \"v1\",\n");
  // One item, and none, are Lists too.
  EXPECT_EQ(
      Json::parse(FormatObjects(Workspaces(), {ToPrinted(phi_)}, Options("json"), true))["items"]
          .size(),
      1u);
  EXPECT_EQ(Json::parse(FormatObjects(Workspaces(), {}, Options("json"), true))["items"],
            Json::array());
}

TEST_F(OutputFormatTest, ANamedObjectPrintsAlone) {
  const std::string out = FormatObjects(Workspaces(), {ToPrinted(phi_)}, Options("json"), false);
  const Json object = Json::parse(out);
  EXPECT_EQ(object["kind"], "Workspace");
  EXPECT_EQ(object["resource"]["count"], 1);
  EXPECT_THAT(FormatObjects(Workspaces(), {ToPrinted(phi_)}, Options("yaml"), false),
              ::testing::StartsWith("apiVersion: kaito.sh/v1beta1\nkind: Workspace\n"));
}

TEST_F(OutputFormatTest, ACollectionIsOneListInYaml) {
  EXPECT_EQ(FormatYamlList({"a: 1\nb:\n  - x\n", "a: 2\n"}),
            "apiVersion: v1\nitems:\n- a: 1\n  b:\n    - x\n- a: 2\nkind: List\nmetadata:\n"
            "  resourceVersion: \"\"\n");
  EXPECT_EQ(FormatYamlList({}),
            "apiVersion: v1\nitems: []\nkind: List\nmetadata:\n  resourceVersion: \"\"\n");
  const std::string out = FormatObjects(Workspaces(), Both(), Options("yaml"), true);
  EXPECT_THAT(out, HasSubstr("items:\n- apiVersion: kaito.sh/v1beta1\n  kind: Workspace\n"));
  EXPECT_THAT(out, HasSubstr("\n    name: llama\n"));
}

TEST_F(OutputFormatTest, NamesAreKindDotGroupSlashName) {
  EXPECT_EQ(FormatObjects(Workspaces(), Both(), Options("name"), true),
            "workspace.kaito.sh/phi\nworkspace.kaito.sh/llama\n");
  v1::ConfigMap cm;
  cm.mutable_metadata()->set_name("params");
  EXPECT_EQ(ObjectName(*FindResourceType("cm"), ToPrinted(cm).json), "configmap/params");
  v1::ModelInfo model;
  model.set_name("phi-4");
  EXPECT_EQ(ObjectName(*FindResourceType("presets"), ToPrinted(model).json),
            "preset.kaito.sh/phi-4");
  EXPECT_EQ(ObjectName(*FindResourceType("nodes"), Json::parse(R"({"metadata":{"name":"n"}})")),
            "node/n");
  EXPECT_EQ(ObjectName(*FindResourceType("nc"), Json::parse(R"({"metadata":{"name":"c"}})")),
            "nodeclaim.kaito.sh/c");
}

TEST_F(OutputFormatTest, JsonPathRunsAgainstTheListOrTheObject) {
  EXPECT_EQ(
      FormatObjects(Workspaces(), Both(), Options("jsonpath={.items[*].metadata.name}"), true),
      "phi llama");
  EXPECT_EQ(
      FormatObjects(Workspaces(), {ToPrinted(phi_)}, Options("jsonpath={.metadata.name}"), false),
      "phi");
}

TEST_F(OutputFormatTest, CustomColumns) {
  PrintOptions options = Options(
      "custom-columns=NAME:.metadata.name,COUNT:{.resource.count},LABEL:.metadata.labels.app");
  EXPECT_EQ(FormatObjects(Workspaces(), Both(), options, true),
            "NAME    COUNT   LABEL\n"
            "phi     1       chat\n"
            "llama   2       <none>\n");
  options.no_headers = true;
  EXPECT_EQ(FormatObjects(Workspaces(), Both(), options, true),
            "phi     1   chat\nllama   2   <none>\n");
  // A comma inside brackets belongs to the path.
  options = Options("custom-columns=N:.metadata['name','namespace']");
  EXPECT_EQ(FormatObjects(Workspaces(), {ToPrinted(phi_)}, options, true), "N\nphi,default\n");
}

TEST_F(OutputFormatTest, TablesTakeLabelsAndNoHeaders) {
  PrintOptions options = Options("");
  options.show_labels = true;
  const std::string out = FormatObjects(Workspaces(), Both(), options, true);
  EXPECT_THAT(out, ::testing::ContainsRegex("^NAME +INSTANCE +.* AGE +LABELS\n"));
  EXPECT_THAT(out, ::testing::ContainsRegex("\nphi +.* 42s +app=chat,tier=gold\n"));
  EXPECT_THAT(out, ::testing::ContainsRegex("\nllama +.* <none>\n"));
  options.no_headers = true;
  EXPECT_THAT(FormatObjects(Workspaces(), Both(), options, true), ::testing::StartsWith("phi "));
  options.no_headers = false;
  EXPECT_THAT(FormatObjects(Workspaces(), Both(), options, true, /*with_header=*/false),
              ::testing::StartsWith("phi "))
      << "a watch event after the first";
}

TEST_F(OutputFormatTest, EachObjectAloneForWatchEvents) {
  EXPECT_EQ(FormatObjects(Workspaces(), Both(), Options("yaml"), false).find("---\n") !=
                std::string::npos,
            true);
  const std::string json = FormatObjects(Workspaces(), Both(), Options("json"), false);
  EXPECT_EQ(json.find("\"kind\": \"List\""), std::string::npos);
  EXPECT_THAT(json, HasSubstr("}\n{\n"));
}

TEST_F(OutputFormatTest, SortBy) {
  std::vector<PrintedObject> objects = Both();
  SortObjects(objects, *JsonPath::ParseExpression(".metadata.name"));
  EXPECT_EQ(objects[0].json["metadata"]["name"], "llama");
  SortObjects(objects, *JsonPath::ParseExpression("{.resource.count}"));
  EXPECT_EQ(objects[0].json["metadata"]["name"], "phi");
  // Numbers by value, not as text; missing values first; ties keep their order.
  std::vector<v1::Workspace> many = {Workspace("a", "x", 10), Workspace("b", "x", 9),
                                     Workspace("c", "x", 10)};
  many.push_back(Workspace("d", "x", 0));
  many.back().mutable_resource()->clear_count();
  std::vector<PrintedObject> printed;
  for (const auto& ws : many) printed.push_back(ToPrinted(ws));
  SortObjects(printed, *JsonPath::ParseExpression(".resource.count"));
  std::string order;
  for (const auto& p : printed) order += p.json["metadata"]["name"].get<std::string>();
  EXPECT_EQ(order, "dbac");
}

TEST_F(OutputFormatTest, LabelsText) {
  EXPECT_EQ(LabelsText(ToPrinted(phi_).json), "app=chat,tier=gold");
  EXPECT_EQ(LabelsText(ToPrinted(llama_).json), "<none>");
  EXPECT_EQ(LabelsText(Json::parse(R"({"name":"x"})")), "<none>");
}

}  // namespace
}  // namespace kaito::ctl
