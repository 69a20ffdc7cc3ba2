#include "common/manifest_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "kaito/v1/config.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito {
namespace {

using ::testing::HasSubstr;

const v1::Workspace& AsWorkspace(const ManifestDocument& d) {
  return static_cast<const v1::Workspace&>(*d.object);
}

TEST(ManifestCodecTest, ParsesKaitoWorkspaceWithoutSpec) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: workspace-phi-4
  labels: {team: ml}
  annotations:
    kaito.sh/runtime: vllm
resource:
  count: 2
  instanceType: "Standard_NC24ads_A100_v4"
  labelSelector:
    matchLabels:
      apps: phi-4
    matchExpressions:
      - {key: tier, operator: In, values: [a, b]}
inference:
  preset:
    name: phi-4
    presetOptions:
      modelAccessSecret: hf-token
  adapters:
    - source:
        name: adapter-a
        image: "example.com/adapter:1"
      strength: "0.5"
  template:
    spec:
      containers:
        - name: c
          image: nginx
          ports: [{containerPort: 80}]
          env: [{name: A, value: "1"}]
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 1u);
  ASSERT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status;
  const auto& ws = AsWorkspace((*docs)[0]);
  EXPECT_EQ(ws.metadata().name(), "workspace-phi-4");
  EXPECT_EQ(ws.metadata().annotations().at("kaito.sh/runtime"), "vllm");
  EXPECT_EQ(ws.resource().count(), 2);
  EXPECT_TRUE(ws.resource().has_count());
  EXPECT_EQ(ws.resource().instance_type(), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(ws.resource().label_selector().match_labels().at("apps"), "phi-4");
  EXPECT_EQ(ws.resource().label_selector().match_expressions(0).values_size(), 2);
  EXPECT_EQ(ws.inference().preset().preset_options().model_access_secret(), "hf-token");
  EXPECT_EQ(ws.inference().adapters(0).strength(), "0.5");
  const auto& containers =
      ws.inference().template_().fields().at("spec").struct_value().fields().at("containers");
  EXPECT_EQ(containers.list_value().values(0).struct_value().fields().at("image").string_value(),
            "nginx");
}

TEST(ManifestCodecTest, MultiDocumentWithConfigMapAndSecret) {
  auto docs = ParseManifests(R"(
apiVersion: v1
kind: Secret
metadata: {name: hf-token}
type: Opaque
data:
  HF_TOKEN: aGVsbG8=
stringData:
  OTHER: plain
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ds-inference-params
data:
  inference_config.yaml: |
    vllm:
      max-model-len: 131072
---
# an empty document is skipped
)");
  ASSERT_TRUE(docs.ok()) << docs.status();
  ASSERT_EQ(docs->size(), 2u);
  const auto& secret = static_cast<const v1::Secret&>(*(*docs)[0].object);
  EXPECT_EQ(secret.data().at("HF_TOKEN"), "hello");
  EXPECT_EQ(secret.string_data().at("OTHER"), "plain");
  const auto& cm = static_cast<const v1::ConfigMap&>(*(*docs)[1].object);
  EXPECT_THAT(cm.data().at("inference_config.yaml"), HasSubstr("max-model-len: 131072"));
}

TEST(ManifestCodecTest, UnknownFieldNamesItsPath) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: w}
resource:
  instanceTyp: Standard_NC24ads_A100_v4
  labelSelector: {matchLabels: {a: b}, bogus: 1}
spec: {}
)");
  ASSERT_TRUE(docs.ok());
  const absl::Status& s = (*docs)[0].status;
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("document 1 (Workspace \"w\")"));
  EXPECT_THAT(s.message(), HasSubstr("resource.instanceTyp: unknown field \"instanceTyp\""));
  EXPECT_THAT(s.message(), HasSubstr("resource.labelSelector.bogus: unknown field"));
  EXPECT_THAT(s.message(), HasSubstr("spec: unknown field \"spec\""));
  EXPECT_EQ((*docs)[0].object, nullptr);
}

TEST(ManifestCodecTest, WrongTypesAreErrors) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: w
  labels: {count: 3}
resource:
  count: "2"
  instanceType: [a]
  preferredNodes: node-1
inference:
  adapters:
    - source: {name: a}
      strength: 0.5
)");
  ASSERT_TRUE(docs.ok());
  const std::string msg((*docs)[0].status.message());
  EXPECT_THAT(msg, HasSubstr("metadata.labels[count]: Invalid type: expected string, got number"));
  EXPECT_THAT(msg, HasSubstr("resource.count: Invalid type: expected integer, got string"));
  EXPECT_THAT(msg, HasSubstr("resource.instanceType: Invalid type: expected string, got array"));
  EXPECT_THAT(msg, HasSubstr("resource.preferredNodes: Invalid type: expected array, got string"));
  EXPECT_THAT(msg, HasSubstr("inference.adapters[0].strength: Invalid type: expected string, got number"));
}

TEST(ManifestCodecTest, OutOfRangeIntegerAndBadBase64) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: w}
resource: {count: 99999999999}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {k: "not base64!"}
)");
  ASSERT_TRUE(docs.ok());
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("resource.count: Invalid value: 99999999999: out of range"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("data[k]: Invalid value: illegal base64 data"));
}

TEST(ManifestCodecTest, UnsupportedKindFailsOnlyItsDocument) {
  auto docs = ParseManifests(R"(
apiVersion: kaito.sh/v1alpha1
kind: RAGEngine
metadata: {name: rag}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pvc}
---
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: ok}
)");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 3u);
  EXPECT_EQ((*docs)[0].status.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("kind RAGEngine (kaito.sh/v1alpha1) is not supported"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("document 2 (PersistentVolumeClaim \"pvc\")"));
  EXPECT_TRUE((*docs)[2].status.ok());
}

TEST(ManifestCodecTest, MalformedYamlNamesLine) {
  auto docs = ParseManifests("apiVersion: v1\nkind: [unclosed\n");
  ASSERT_FALSE(docs.ok());
  EXPECT_THAT(docs.status().message(), HasSubstr("malformed YAML at line"));
}

TEST(ManifestCodecTest, MissingKindOrNonMapDocument) {
  auto docs = ParseManifests("metadata: {name: x}\n---\n- a\n- b\n");
  ASSERT_TRUE(docs.ok());
  ASSERT_EQ(docs->size(), 2u);
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("apiVersion and kind are required"));
  EXPECT_THAT((*docs)[1].status.message(), HasSubstr("expected a mapping"));
}

TEST(ManifestCodecTest, DeepNestingIsRejectedNotCrashing) {
  std::string deep = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n"
                     "inference:\n  template: ";
  for (int i = 0; i < 100; ++i) deep += "{a: ";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "}";
  deep += "\n";
  auto docs = ParseManifests(deep);
  ASSERT_TRUE(docs.ok()) << docs.status();
  EXPECT_THAT((*docs)[0].status.message(), HasSubstr("nesting is deeper than"));
  // Far deeper than the YAML parser's own guard: an error, not a stack overflow.
  std::string deeper(100000, '[');
  EXPECT_FALSE(ParseManifests(deeper).ok());
}

TEST(ManifestCodecTest, AliasExpansionIsBounded) {
  // "Billion laughs": each level doubles; the node budget stops it.
  std::string bomb = "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\n"
                     "x0: &a0 [1, 1]\n";
  for (int i = 1; i < 40; ++i) {
    bomb += "x" + std::to_string(i) + ": &a" + std::to_string(i) + " [*a" +
            std::to_string(i - 1) + ", *a" + std::to_string(i - 1) + "]\n";
  }
  bomb += "inference: {template: {spec: *a39}}\n";
  auto docs = ParseManifests(bomb);
  ASSERT_TRUE(docs.ok());
  EXPECT_FALSE((*docs)[0].status.ok());
}

TEST(ManifestCodecTest, OversizedManifestIsRejected) {
  std::string big(kMaxManifestBytes + 1, ' ');
  EXPECT_EQ(ParseManifests(big).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ManifestCodecTest, YamlRoundTrip) {
  v1::Workspace ws;
  ws.set_api_version("kaito.sh/v1beta1");
  ws.set_kind("Workspace");
  ws.mutable_metadata()->set_name("w");
  (*ws.mutable_metadata()->mutable_labels())["version"] = "1.0";
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  ws.mutable_resource()->set_count(1);
  (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["on"] = "true";
  ws.mutable_inference()->add_adapters()->set_strength("1.0");
  ws.mutable_inference()->mutable_adapters(0)->mutable_source()->set_name("a");
  ws.mutable_inference()->set_config("line1\nline2");
  const std::string yaml = MessageToYaml(ws);
  auto docs = ParseManifests(yaml);
  ASSERT_TRUE(docs.ok()) << docs.status() << "\n" << yaml;
  ASSERT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status << "\n" << yaml;
  EXPECT_EQ(AsWorkspace((*docs)[0]).SerializeAsString(), ws.SerializeAsString()) << yaml;
}

}  // namespace
}  // namespace kaito
