// A case for every Kaito admission rule (shared/reference/kaito.md §2.2, §2.3), accept
// and reject, plus the checks beyond Kaito (docs/validation.md). Workspaces are written
// as YAML and go through the manifest codec, as users write them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include <map>

#include "absl/strings/str_replace.h"
#include "common/manifest_codec.h"
#include "presets/tuning_defaults.h"
#include "presets/offerings.h"
#include "presets/workspace_validator.h"
#include "common/image_reference.h"

namespace kaito::presets {
namespace {

using ::testing::HasSubstr;

class FakeContext : public ValidationContext {
 public:
  std::vector<v1::Node> NodesMatching(const LabelSelectorMatcher& selector) override {
    std::vector<v1::Node> out;
    for (const auto& n : nodes) {
      if (selector.Matches(n.metadata().labels())) out.push_back(n);
    }
    return out;
  }
  std::optional<v1::ConfigMap> GetConfigMap(const std::string& ns,
                                            const std::string& name) override {
    auto it = configmaps.find(ns + "/" + name);
    if (it == configmaps.end()) return std::nullopt;
    return it->second;
  }
  bool SecretExists(const std::string& ns, const std::string& name) override {
    return secrets.count(ns + "/" + name) > 0;
  }
  std::set<std::string> secrets = {"default/s", "default/acr"};
  void AddConfigMap(const std::string& name, const std::string& key, const std::string& value) {
    v1::ConfigMap cm;
    cm.mutable_metadata()->set_name(name);
    cm.mutable_metadata()->set_namespace_("default");
    (*cm.mutable_data())[key] = value;
    configmaps["default/" + name] = cm;
  }
  void AddGpuNode(const std::string& name, const std::string& app, const std::string& product,
                  int count, int memory_mib, const std::string& cc = "8.0") {
    v1::Node n;
    n.mutable_metadata()->set_name(name);
    auto& labels = *n.mutable_metadata()->mutable_labels();
    labels["apps"] = app;
    if (!product.empty()) labels["nvidia.com/gpu.product"] = product;
    if (count > 0) labels["nvidia.com/gpu.count"] = std::to_string(count);
    if (memory_mib > 0) labels["nvidia.com/gpu.memory"] = std::to_string(memory_mib);
    labels["nvidia.com/cuda.compute.major"] = cc.substr(0, 1);
    labels["nvidia.com/cuda.compute.minor"] = cc.substr(2);
    nodes.push_back(n);
  }

  std::vector<v1::Node> nodes;
  std::map<std::string, v1::ConfigMap> configmaps;
};

const Catalog& TheCatalog() {
  static const Catalog* catalog = [] {
    auto c = Catalog::Embedded();
    if (!c.ok()) {
      ADD_FAILURE() << c.status();
      std::abort();
    }
    return new Catalog(std::move(*c));
  }();
  return *catalog;
}

v1::Workspace Parse(const std::string& yaml) {
  auto docs = ParseManifests(yaml);
  EXPECT_TRUE(docs.ok()) << docs.status();
  EXPECT_EQ(docs->size(), 1u);
  EXPECT_TRUE((*docs)[0].status.ok()) << (*docs)[0].status << "\n" << yaml;
  v1::Workspace ws = static_cast<const v1::Workspace&>(*(*docs)[0].object);
  if (ws.metadata().namespace_().empty()) ws.mutable_metadata()->set_namespace_("default");
  return ws;
}

// An inference workspace; `resource`, `inference` and `annotations` are YAML bodies.
std::string Inference(const std::string& resource =
                          "  instanceType: Standard_NC24ads_A100_v4\n"
                          "  labelSelector: {matchLabels: {apps: phi}}\n",
                      const std::string& inference = "  preset: {name: phi-4-mini-instruct}\n",
                      const std::string& annotations = "",
                      const std::string& version = "kaito.sh/v1beta1") {
  return "apiVersion: " + version + "\nkind: Workspace\nmetadata:\n  name: ws\n" +
         (annotations.empty() ? "" : "  annotations:\n" + annotations) + "resource:\n" + resource +
         "inference:\n" + inference;
}

constexpr char kNapResource[] =
    "  instanceType: Standard_NC24ads_A100_v4\n"
    "  labelSelector: {matchLabels: {apps: phi}}\n";
constexpr char kByoResource[] = "  labelSelector: {matchLabels: {apps: phi}}\n";

std::string Tuning(const std::string& tuning, const std::string& resource = kNapResource,
                   const std::string& version = "kaito.sh/v1beta1") {
  return "apiVersion: " + version + "\nkind: Workspace\nmetadata:\n  name: ws\nresource:\n" +
         resource + "tuning:\n" + tuning;
}

constexpr char kGoodTuning[] =
    "  preset: {name: phi-3-mini-128k-instruct}\n"
    "  method: qlora\n"
    "  input: {urls: [\"https://example.com/data.parquet\"]}\n"
    "  output: {image: \"example.azurecr.io/adapter:0.0.1\", imagePushSecret: acr}\n";

struct Result {
  std::string errors;
  std::vector<std::string> warnings;
  bool ok() const { return errors.empty(); }
};

class ValidationTest : public ::testing::Test {
 protected:
  Result Check(const std::string& yaml, const std::string* old_yaml = nullptr) {
    v1::Workspace ws = Parse(yaml);
    std::optional<v1::Workspace> old;
    if (old_yaml) old = Parse(*old_yaml);
    WorkspaceValidator validator(&TheCatalog(), options_);
    FieldErrors errors;
    Result r;
    validator.Validate(ws, old ? &*old : nullptr, ctx_, errors, r.warnings);
    absl::Status s = errors.ToStatus("ws");
    r.errors = s.ok() ? "" : std::string(s.message());
    return r;
  }
  void ExpectOk(const std::string& yaml) {
    Result r = Check(yaml);
    EXPECT_TRUE(r.ok()) << r.errors << "\n" << yaml;
  }
  void ExpectError(const std::string& yaml, const std::string& part) {
    Result r = Check(yaml);
    EXPECT_THAT(r.errors, HasSubstr(part)) << yaml;
  }
  void ExpectWarning(const std::string& yaml, const std::string& part) {
    Result r = Check(yaml);
    EXPECT_TRUE(r.ok()) << r.errors;
    EXPECT_THAT(testing::PrintToString(r.warnings), HasSubstr(part)) << yaml;
  }
  void ExpectUpdateError(const std::string& old_yaml, const std::string& yaml,
                         const std::string& part) {
    Result r = Check(yaml, &old_yaml);
    EXPECT_THAT(r.errors, HasSubstr(part)) << yaml;
  }
  void ExpectUpdateOk(const std::string& old_yaml, const std::string& yaml) {
    Result r = Check(yaml, &old_yaml);
    EXPECT_TRUE(r.ok()) << r.errors;
  }
  void Byo() { options_.node_auto_provisioning = false; }

  ValidationOptions options_{.node_auto_provisioning = true};
  FakeContext ctx_;
};

// --- Rule 2: exactly one of inference and tuning ------------------------------------------

TEST_F(ValidationTest, NeitherInferenceNorTuning) {
  ExpectError("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: ws}\nresource:\n" +
                  std::string(kNapResource),
              "Either Inference or Tuning must be specified, not neither");
}

TEST_F(ValidationTest, BothInferenceAndTuning) {
  ExpectError(Inference() + "tuning:\n" + kGoodTuning,
              "Either Inference or Tuning must be specified, but not both");
}

// --- Rule 3: instanceType by provisioning mode ------------------------------------------------

TEST_F(ValidationTest, NapRequiresInstanceType) {
  ExpectError(Inference(kByoResource),
              "resource.instanceType: instanceType is required when node auto-provisioning is enabled");
}

TEST_F(ValidationTest, ByoForbidsInstanceType) {
  Byo();
  ExpectError(Inference(), "instanceType must be empty when node auto-provisioning is disabled (BYO scenario)");
}

TEST_F(ValidationTest, NapAcceptsKnownInstanceType) { ExpectOk(Inference()); }

// --- Rules 4 and 6: annotations ---------------------------------------------------------------

TEST_F(ValidationTest, NodeImageFamily) {
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                     "    kaito.sh/node-image-family: azurelinux\n"));
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                        "    kaito.sh/node-image-family: windows\n"),
              "unsupported node image family \"windows\"");
}

TEST_F(ValidationTest, PerformanceMode) {
  for (const char* mode : {"balanced", "interactivity", "throughput"}) {
    ExpectOk(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                       std::string("    kaito.sh/performance-mode: ") + mode + "\n"));
  }
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                        "    kaito.sh/performance-mode: turbo\n"),
              "metadata.annotations[kaito.sh/performance-mode]: Unsupported value: \"turbo\"");
}

TEST_F(ValidationTest, CapacityFallbackAnnotations) {
  const std::string preset = "  preset: {name: phi-4-mini-instruct}\n";
  for (const char* capacity : {"on-demand", "spot", "spot-then-on-demand"}) {
    ExpectOk(Inference(kNapResource, preset, std::string("    kaito.sh/capacity-type: ") + capacity + "\n"));
  }
  ExpectError(Inference(kNapResource, preset, "    kaito.sh/capacity-type: cheap\n"),
              "metadata.annotations[kaito.sh/capacity-type]: Unsupported value: \"cheap\"");
  ExpectOk(Inference(kNapResource, preset, "    kaito.sh/instance-type-fallback: auto\n"));
  ExpectOk(Inference(kNapResource, preset,
                     "    kaito.sh/instance-type-fallback: Standard_NC48ads_A100_v4, Standard_NC40ads_H100_v5\n"));
  ExpectError(Inference(kNapResource, preset,
                        "    kaito.sh/instance-type-fallback: Standard_NC48ads_A100_v4,Standard_Nope\n"),
              "metadata.annotations[kaito.sh/instance-type-fallback]: Unsupported instance type "
              "\"Standard_Nope\": not in the azure SKU catalog");
  ExpectError(Inference(kNapResource, preset,
                        "    kaito.sh/instance-type-fallback: Standard_NC48ads_A100_v4,standard_nc48ads_a100_v4\n"),
              "Duplicate value");
  ExpectError(Inference(kNapResource, preset, "    kaito.sh/instance-type-fallback: ' , '\n"),
              "expected \"auto\" or a comma-separated list");
}

TEST_F(ValidationTest, RankedOfferingsFitTheModelFewestGpusFirst) {
  v1::Workspace ws = Parse(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                                     "    kaito.sh/instance-type-fallback: auto\n"
                                     "    kaito.sh/capacity-type: spot-then-on-demand\n"));
  std::vector<Offering> ranked = RankOfferings(TheCatalog(), options_, ctx_, ws);
  ASSERT_GE(ranked.size(), 4u);
  EXPECT_EQ(ranked[0].instance_type, EffectiveInstanceType(ws)) << "the workspace's own first";
  EXPECT_EQ(ranked[0].capacity_type, "spot");
  EXPECT_EQ(ranked[1].instance_type, ranked[0].instance_type);
  EXPECT_EQ(ranked[1].capacity_type, "on-demand");
  int previous_gpus = 0;
  for (size_t i = 2; i < ranked.size(); i += 2) {
    const Sku* sku = TheCatalog().FindSku("azure", ranked[i].instance_type);
    ASSERT_NE(sku, nullptr);
    EXPECT_FALSE(sku->retired);
    EXPECT_GE(sku->gpu_count, previous_gpus) << ranked[i].instance_type;
    previous_gpus = sku->gpu_count;
  }
  EXPECT_TRUE(HasFallback(ws));
  EXPECT_FALSE(HasFallback(Parse(Inference())));
}

TEST_F(ValidationTest, UseLocalWeights) {
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                     "    kaito.sh/use-local-weights: \"true\"\n"));
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                        "    kaito.sh/use-local-weights: \"yes\"\n"),
              "kaito.sh/use-local-weights]: Unsupported value: \"yes\"");
}

TEST_F(ValidationTest, RuntimeAnnotationValues) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4}\n", "    kaito.sh/runtime: tgi\n"),
              "kaito.sh/runtime]: Unsupported value: \"tgi\"");
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4}\n", "    kaito.sh/runtime: transformers\n"));
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4}\n", "    kaito.sh/runtime: vLLM\n"));
}

// --- Rule 7: preset or template -----------------------------------------------------------------

TEST_F(ValidationTest, PresetOrTemplateRequired) {
  ExpectError(Inference(kNapResource, "  config: x\n"), "Preset or Template must be specified");
}

TEST_F(ValidationTest, PresetAndTemplateExclusive) {
  ExpectError(Inference(kNapResource,
                        "  preset: {name: phi-4}\n  template: {spec: {containers: [{name: c, image: nginx}]}}\n"),
              "Preset and Template cannot be set at the same time");
}

TEST_F(ValidationTest, TemplateAlone) {
  ExpectOk(Inference(kNapResource, "  template: {spec: {containers: [{name: c, image: nginx}]}}\n"));
}

// --- Rule 8 and 12: preset names -----------------------------------------------------------------

TEST_F(ValidationTest, UnknownPreset) {
  ExpectError(Inference(kNapResource, "  preset: {name: gpt-5}\n"),
              "inference.preset.name: Unsupported inference preset name gpt-5");
}

TEST_F(ValidationTest, UnknownOrgModelId) {
  ExpectError(Inference(kNapResource, "  preset: {name: someorg/some-model}\n"),
              "Unsupported inference preset name someorg/some-model");
}

TEST_F(ValidationTest, PresetByHuggingFaceIdCaseInsensitive) {
  ExpectOk(Inference(kNapResource, "  preset: {name: MICROSOFT/Phi-4-Mini-Instruct}\n"));
  ExpectOk(Inference(kNapResource, "  preset: {name: Phi-4-Mini-Instruct}\n"));
}

TEST_F(ValidationTest, DeprecatedPreset) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-2}\n",
                        "    kaito.sh/runtime: transformers\n"),
              "Model phi-2 is deprecated and no longer supported");
}

// Every model of the catalog validates on a large enough GPU node under vLLM.
TEST_F(ValidationTest, EveryCatalogModelOnH100UnderVllm) {
  for (const ModelPreset& m : TheCatalog().models()) {
    if (m.deprecated || !m.vllm) continue;
    SCOPED_TRACE(m.name);
    std::string inference = "  preset:\n    name: " + m.name + "\n";
    if (m.gated) inference += "    presetOptions: {modelAccessSecret: hf-token}\n";
    ExpectOk(Inference("  instanceType: Standard_ND96isr_H100_v5\n"
                       "  labelSelector: {matchLabels: {apps: phi}}\n",
                       inference));
  }
}

// --- Rule 9: runtime support -------------------------------------------------------------------

TEST_F(ValidationTest, TransformersUnsupportedModel) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n",
                        "    kaito.sh/runtime: transformers\n"),
              "does not support inference with Huggingface Transformers runtime");
}

TEST_F(ValidationTest, VllmGateOffMakesTransformersDefault) {
  options_.vllm_default = false;
  ExpectError(Inference(), "does not support inference with Huggingface Transformers runtime");
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4}\n"));
}

TEST_F(ValidationTest, VllmUnsupportedModel) {
  ExpectError(Inference(kNapResource, "  preset: {name: falcon-7b}\n"),
              "does not support inference with vLLM runtime");
  ExpectOk(Inference(kNapResource, "  preset: {name: falcon-7b}\n", "    kaito.sh/runtime: transformers\n"));
}

TEST_F(ValidationTest, VllmRejectsAdapterStrength) {
  ExpectError(Inference(kNapResource,
                        "  preset: {name: phi-3-mini-128k-instruct}\n"
                        "  adapters:\n  - source: {name: a, image: \"example.com/a:1\"}\n    strength: \"1.0\"\n"),
              "inference.adapters[0].strength: vLLM does not support adapter strength");
}

TEST_F(ValidationTest, TransformersAcceptsAdapterStrength) {
  ExpectOk(Inference(kNapResource,
                     "  preset: {name: phi-3-mini-128k-instruct}\n"
                     "  adapters:\n  - source: {name: a, image: \"example.com/a:1\"}\n    strength: \"0.5\"\n",
                     "    kaito.sh/runtime: transformers\n"));
}

TEST_F(ValidationTest, VllmAdaptersWithoutStrength) {
  ExpectOk(Inference(kNapResource,
                     "  preset: {name: phi-4}\n"
                     "  adapters:\n  - source: {name: a, image: \"example.com/a:1\"}\n"));
}

// --- Rule 10: model access secret ------------------------------------------------------------

TEST_F(ValidationTest, GatedModelNeedsSecret) {
  ExpectError(Inference("  instanceType: Standard_NC96ads_A100_v4\n  labelSelector: {matchLabels: {a: b}}\n",
                        "  preset: {name: llama-3.1-8b-instruct}\n"),
              "Model llama-3.1-8b-instruct requires authentication and needs a modelAccessSecret with HF_TOKEN key");
  ExpectOk(Inference("  instanceType: Standard_NC96ads_A100_v4\n  labelSelector: {matchLabels: {a: b}}\n",
                     "  preset:\n    name: llama-3.1-8b-instruct\n    presetOptions: {modelAccessSecret: hf-token}\n"));
}

TEST_F(ValidationTest, UngatedModelMayHaveSecret) {
  ExpectOk(Inference(kNapResource,
                     "  preset:\n    name: phi-4-mini-instruct\n    presetOptions: {modelAccessSecret: hf-token}\n"));
}

TEST_F(ValidationTest, ImageModelRejectsSecret) {
  ExpectError(Inference(kNapResource,
                        "  preset:\n    name: falcon-7b\n    presetOptions: {modelAccessSecret: hf-token}\n",
                        "    kaito.sh/runtime: transformers\n"),
              "Model falcon-7b does not require a modelAccessSecret");
}

// --- Rule 11 and 32: adapters (checked on create too, unlike Kaito) ---------------------------

std::string Adapters(int n, const std::string& name_prefix = "a") {
  std::string s = "  preset: {name: phi-4}\n  adapters:\n";
  for (int i = 0; i < n; ++i) {
    s += "  - source: {name: " + name_prefix + std::to_string(i) + ", image: \"example.com/a:1\"}\n";
  }
  return s;
}

TEST_F(ValidationTest, TenAdaptersAllowed) { ExpectOk(Inference(kNapResource, Adapters(10))); }

TEST_F(ValidationTest, ElevenAdaptersRejected) {
  ExpectError(Inference(kNapResource, Adapters(11)), "inference.adapters: Too many: 11: maximum of 10 allowed");
}

TEST_F(ValidationTest, HugeAdapterListRejectedCheaply) {
  ExpectError(Inference(kNapResource, Adapters(5000)), "maximum of 10 allowed");
}

TEST_F(ValidationTest, DuplicateAdapterNames) {
  ExpectError(Inference(kNapResource,
                        "  preset: {name: phi-4}\n  adapters:\n"
                        "  - source: {name: dup, image: \"example.com/a:1\"}\n"
                        "  - source: {name: dup, image: \"example.com/b:1\"}\n"),
              "inference.adapters[1].source.name: Duplicate adapter source name found: dup");
}

TEST_F(ValidationTest, AdapterNeedsSource) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - {}\n"),
              "inference.adapters[0].source: Required value");
}

TEST_F(ValidationTest, AdapterNeedsName) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - source: {image: \"example.com/a:1\"}\n"),
              "inference.adapters[0].source.name: Required value");
}

TEST_F(ValidationTest, AdapterNameMustBeDnsSubdomain) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - source: {name: Bad_Name, image: \"example.com/a:1\"}\n"),
              "inference.adapters[0].source.name: Invalid value: \"Bad_Name\"");
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - source: {name: a.b-c, image: \"example.com/a:1\"}\n"));
}

TEST_F(ValidationTest, AdapterNeedsImageOrVolume) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - source: {name: a}\n"),
              "Either Image or Volume must be specified for adapter source");
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - source: {name: a, volumeSource: {persistentVolumeClaim: {claimName: c}}}\n"));
}

TEST_F(ValidationTest, AdapterUrlsNotSupported) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4}\n  adapters:\n  - source: {name: a, image: \"e.com/a:1\", urls: [\"https://e.com/x\"]}\n"),
              "URLs are not supported as adapter source");
}

TEST_F(ValidationTest, AdapterStrengthRange) {
  const std::string annotations = "    kaito.sh/runtime: transformers\n";
  for (const char* ok : {"0", "0.0", "0.25", "1", "1.0"}) {
    ExpectOk(Inference(kNapResource,
                       std::string("  preset: {name: phi-4}\n  adapters:\n  - source: {name: a, image: \"e.com/a:1\"}\n    strength: \"") + ok + "\"\n",
                       annotations));
  }
  for (const char* bad : {"-0.1", "1.5", "abc", "nan", ""}) {
    ExpectError(Inference(kNapResource,
                          std::string("  preset: {name: phi-4}\n  adapters:\n  - source: {name: a, image: \"e.com/a:1\"}\n    strength: \"") + bad + "\"\n",
                          annotations),
                "must be a number between 0 and 1");
  }
}

// --- Rule 13: label selector -------------------------------------------------------------------

TEST_F(ValidationTest, LabelSelectorRequired) {
  ExpectError(Inference("  instanceType: Standard_NC24ads_A100_v4\n"), "resource.labelSelector: Required value");
}

TEST_F(ValidationTest, OnlyReservedMatchLabels) {
  ExpectError(Inference("  instanceType: Standard_NC24ads_A100_v4\n"
                        "  labelSelector: {matchLabels: {kaito.sh/workspace: x}}\n"),
              "matchLabels must contain at least one non-reserved label");
  ExpectOk(Inference("  instanceType: Standard_NC24ads_A100_v4\n"
                     "  labelSelector: {matchLabels: {kaito.sh/workspace: x, apps: y}}\n"));
}

TEST_F(ValidationTest, ExpressionsOnlySelector) {
  ExpectOk(Inference("  instanceType: Standard_NC24ads_A100_v4\n"
                     "  labelSelector: {matchExpressions: [{key: apps, operator: In, values: [a]}]}\n"));
}

// --- Rule 14: bring your own nodes -------------------------------------------------------------

TEST_F(ValidationTest, ByoNeedsMatchingNodes) {
  Byo();
  ExpectError(Inference(kByoResource), "No nodes found matching the specified label selector");
}

TEST_F(ValidationTest, ByoNodeWithoutGpuLabels) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "", 0, 0);
  ExpectError(Inference(kByoResource), "Failed to get GPU config from nvidia labels of node n1");
}

TEST_F(ValidationTest, ByoUniformNodes) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "NVIDIA-A100-SXM4-80GB", 1, 81920);
  ExpectOk(Inference(kByoResource));
  ctx_.AddGpuNode("n2", "phi", "NVIDIA-A100-SXM4-80GB", 1, 81920);
  ExpectOk(Inference(kByoResource));
}

TEST_F(ValidationTest, ByoNonUniformNodes) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "NVIDIA-A100-SXM4-80GB", 1, 81920);
  ctx_.AddGpuNode("n2", "phi", "NVIDIA-A10", 1, 24576, "8.6");
  ExpectError(Inference(kByoResource), "Non-uniform GPU product/count/memory");
}

TEST_F(ValidationTest, ByoNodesOfOtherWorkspacesIgnored) {
  Byo();
  ctx_.AddGpuNode("other", "other", "NVIDIA-A10", 1, 24576, "8.6");
  ExpectError(Inference(kByoResource), "No nodes found");
}

TEST_F(ValidationTest, ByoInsufficientMemory) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "NVIDIA-A10", 1, 24576, "8.6");
  ExpectError(Inference(kByoResource, "  preset: {name: phi-4}\n"),
              "Insufficient total GPU memory: Instance type n1 has a total of 24Gi, but preset phi-4 requires at least 27.31Gi");
}

TEST_F(ValidationTest, ByoMemoryCountsEveryMatchingNode) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "NVIDIA-A10", 1, 24576, "8.6");
  ctx_.AddGpuNode("n2", "phi", "NVIDIA-A10", 1, 24576, "8.6");
  ExpectOk(Inference(kByoResource, "  preset: {name: phi-4}\n"));
}

TEST_F(ValidationTest, ByoTemplateNeedsNoNodes) {
  Byo();
  ExpectOk(Inference(kByoResource, "  template: {spec: {containers: [{name: c, image: nginx}]}}\n"));
}

// --- Rule 15: auto-provisioning SKUs -----------------------------------------------------------

TEST_F(ValidationTest, UnknownSkuRejected) {
  // Standard_B... is not an N or D size, so Azure's escape does not apply.
  Result r = Check(Inference("  instanceType: Standard_Bad\n  labelSelector: {matchLabels: {a: b}}\n"));
  EXPECT_THAT(r.errors, HasSubstr("Unsupported instance type Standard_Bad. Supported SKUs: [Standard_NV36ads_A10_v5"));
  EXPECT_THAT(r.errors, ::testing::Not(HasSubstr("Standard_NC6s_v3"))) << "retired sizes are not offered";
}

TEST_F(ValidationTest, AzureNAndDSizesPassUnchecked) {
  ExpectWarning(Inference("  instanceType: Standard_NC6\n  labelSelector: {matchLabels: {a: b}}\n"),
                "is not in the SKU catalog");
  ExpectWarning(Inference("  instanceType: standard_d4s_v3\n  labelSelector: {matchLabels: {a: b}}\n"),
                "is not in the SKU catalog");
}

TEST_F(ValidationTest, SkuLookupIsCaseInsensitive) {
  ExpectOk(Inference("  instanceType: standard_nc24ads_a100_V4\n  labelSelector: {matchLabels: {a: b}}\n"));
}

TEST_F(ValidationTest, AwsSkus) {
  options_.cloud = "aws";
  ExpectOk(Inference("  instanceType: p5.48xlarge\n  labelSelector: {matchLabels: {a: b}}\n"));
  ExpectError(Inference("  instanceType: Standard_NC24ads_A100_v4\n  labelSelector: {matchLabels: {a: b}}\n"),
              "Unsupported instance type Standard_NC24ads_A100_v4. Supported SKUs: [p4d.24xlarge");
}

TEST_F(ValidationTest, ArcSkus) {
  options_.cloud = "arc";
  ExpectOk(Inference("  instanceType: Standard_NC16_A16\n  labelSelector: {matchLabels: {a: b}}\n"));
}

TEST_F(ValidationTest, UnknownCloud) {
  options_.cloud = "gcp";
  ExpectError(Inference(), "Failed to get SKU handler");
}

TEST_F(ValidationTest, PartitionNeedsByo) {
  ExpectError(Inference(kNapResource + std::string("  partition: {mode: mig, profile: 1g.10gb}\n")),
              "GPU partitioning is only supported with BYO nodes");
}

// Every SKU of every cloud is accepted for a small model.
TEST_F(ValidationTest, EverySkuOfTheCatalogIsAccepted) {
  for (const Sku& sku : TheCatalog().skus()) {
    SCOPED_TRACE(sku.name);
    options_.cloud = sku.cloud;
    Result r = Check(Inference("  instanceType: " + sku.name + "\n  labelSelector: {matchLabels: {a: b}}\n"));
    EXPECT_TRUE(r.ok()) << r.errors;
  }
}

// --- Rule 16: total GPU memory ------------------------------------------------------------------

TEST_F(ValidationTest, NapVllmLeavesMemoryToTheEstimator) {
  ExpectOk(Inference("  instanceType: Standard_NV36ads_A10_v5\n  labelSelector: {matchLabels: {a: b}}\n",
                     "  preset: {name: phi-4}\n"));
}

TEST_F(ValidationTest, NapTransformersChecksMemory) {
  ExpectError(Inference("  instanceType: Standard_NV36ads_A10_v5\n  labelSelector: {matchLabels: {a: b}}\n",
                        "  preset: {name: phi-4}\n", "    kaito.sh/runtime: transformers\n"),
              "Insufficient total GPU memory: Instance type Standard_NV36ads_A10_v5 has a total of 24Gi, but preset phi-4 requires at least 27.31Gi");
}

TEST_F(ValidationTest, NapTransformersCountMultipliesMemory) {
  // Two A10 nodes hold phi-4 in total, but Transformers cannot span nodes.
  ExpectError(Inference("  count: 2\n  instanceType: Standard_NV36ads_A10_v5\n  labelSelector: {matchLabels: {a: b}}\n",
                        "  preset: {name: phi-4}\n", "    kaito.sh/runtime: transformers\n"),
              "Multi-node distributed inference is not supported with Huggingface Transformers runtime");
}

TEST_F(ValidationTest, BypassTurnsMemoryErrorsIntoWarnings) {
  ExpectWarning(Inference("  instanceType: Standard_NV36ads_A10_v5\n  labelSelector: {matchLabels: {a: b}}\n",
                          "  preset: {name: phi-4}\n",
                          "    kaito.sh/runtime: transformers\n    kaito.sh/bypass-resource-checks: \"\"\n"),
                "Insufficient total GPU memory");
}

TEST_F(ValidationTest, V1alpha1AlwaysChecksMemory) {
  ExpectError(Inference("  instanceType: Standard_NV36ads_A10_v5\n  labelSelector: {matchLabels: {a: b}}\n",
                        "  preset: {name: phi-4}\n", "", "kaito.sh/v1alpha1"),
              "Insufficient total GPU memory");
}

// --- Rule 17: tuning resources -----------------------------------------------------------------

TEST_F(ValidationTest, TuningRejectsMultiNode) {
  ExpectError(Tuning(kGoodTuning, "  count: 2\n" + std::string(kNapResource)),
              "Tuning does not currently support multinode configurations");
}

TEST_F(ValidationTest, TuningRejectsPartition) {
  Byo();
  ExpectError(Tuning(kGoodTuning, std::string(kByoResource) + "  partition: {mode: mig, profile: 1g.10gb}\n"),
              "GPU partitioning is not supported for tuning workloads");
}

// --- Rules 18-20: partitions (BYO) -------------------------------------------------------------

class PartitionTest : public ValidationTest {
 protected:
  void SetUp() override {
    Byo();
    options_.enable_mig = true;
    options_.enable_accelerator = true;
  }
  std::string With(const std::string& partition, const std::string& preset = "phi-4-mini-instruct") {
    return Inference(std::string(kByoResource) + "  partition: " + partition + "\n",
                     "  preset: {name: " + preset + "}\n");
  }
};

TEST_F(PartitionTest, UnknownMode) { ExpectError(With("{mode: vgpu}"), "unsupported partition mode \"vgpu\""); }
TEST_F(PartitionTest, MigProfileOk) { ExpectOk(With("{mode: mig, profile: 1g.10gb}")); }
TEST_F(PartitionTest, MigProfileFractional) { ExpectOk(With("{mode: mig, profile: 3g.47.5gb}")); }
TEST_F(PartitionTest, MigProfileMalformed) {
  ExpectError(With("{mode: mig, profile: 10gb}"), "a MIG profile looks like 1g.10gb");
  ExpectError(With("{mode: mig, profile: 0g.10gb}"), "a MIG profile looks like 1g.10gb");
  ExpectError(With("{mode: mig}"), "a MIG profile looks like 1g.10gb");
}
TEST_F(PartitionTest, MigRejectsCount) { ExpectError(With("{mode: mig, profile: 1g.10gb, count: 2}"), "count is only valid for accelerator mode"); }
TEST_F(PartitionTest, MigGateOff) {
  options_.enable_mig = false;
  ExpectError(With("{mode: mig, profile: 1g.10gb}"), "MIG support is not enabled");
}
TEST_F(PartitionTest, MigSliceTooSmallForModel) {
  ExpectError(With("{mode: mig, profile: 1g.10gb}", "phi-4"),
              "Model phi-4 requires at least 27.31Gi, which exceeds the 1g.10gb MIG slice capacity of 10Gi");
}
TEST_F(PartitionTest, MigSliceBypass) {
  Result r = Check(Inference(std::string(kByoResource) + "  partition: {mode: mig, profile: 1g.10gb}\n",
                             "  preset: {name: phi-4}\n", "    kaito.sh/bypass-resource-checks: \"true\"\n"));
  EXPECT_TRUE(r.ok()) << r.errors;
  EXPECT_EQ(r.warnings.size(), 1u);
}
TEST_F(PartitionTest, AcceleratorOk) { ExpectOk(With("{mode: accelerator, count: 2}")); }
TEST_F(PartitionTest, AcceleratorNeedsCount) { ExpectError(With("{mode: accelerator}"), "count is required for accelerator mode"); }
TEST_F(PartitionTest, AcceleratorRejectsProfile) { ExpectError(With("{mode: accelerator, count: 1, profile: 1g.10gb}"), "profile is not valid for accelerator mode"); }
TEST_F(PartitionTest, AcceleratorGateOff) {
  options_.enable_accelerator = false;
  ExpectError(With("{mode: accelerator, count: 2}"), "accelerator partitioning is not enabled");
}
TEST_F(PartitionTest, AcceleratorCountPositive) { ExpectError(With("{mode: accelerator, count: 0}"), "must be at least 1"); }

// --- Rules 21-22: inference config -------------------------------------------------------------

TEST_F(ValidationTest, InferenceConfigMustExist) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n  config: params\n"),
              "ConfigMap 'params' specified in 'config' not found in namespace 'default'");
}

TEST_F(ValidationTest, InferenceConfigNeedsKey) {
  ctx_.AddConfigMap("params", "other.yaml", "x: 1");
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n  config: params\n"),
              "does not contain 'inference_config.yaml'");
}

TEST_F(ValidationTest, InferenceConfigMustBeYaml) {
  ctx_.AddConfigMap("params", "inference_config.yaml", "vllm: [unclosed");
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n  config: params\n"),
              "inference_config.yaml is not valid YAML");
}

TEST_F(ValidationTest, MaxModelLenWithinContext) {
  ctx_.AddConfigMap("params", "inference_config.yaml", "vllm:\n  max-model-len: 131072\n");
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n  config: params\n"));
  ctx_.AddConfigMap("big", "inference_config.yaml", "vllm:\n  max-model-len: 200000\n");
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n  config: big\n"),
              "max-model-len 200000 exceeds model's maximum supported context window 131072");
}

TEST_F(ValidationTest, MaxModelLenMustBeInteger) {
  ctx_.AddConfigMap("params", "inference_config.yaml", "vllm:\n  max-model-len: lots\n");
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n  config: params\n"),
              "vllm.max-model-len must be a positive integer");
}

TEST_F(ValidationTest, TransformersIgnoresInferenceConfig) {
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4}\n  config: missing\n",
                     "    kaito.sh/runtime: transformers\n"));
}

// --- Rules 24-28: tuning -------------------------------------------------------------------------

TEST_F(ValidationTest, GoodTuning) {
  Result r = Check(Tuning(kGoodTuning));
  EXPECT_TRUE(r.ok()) << r.errors;
  EXPECT_TRUE(r.warnings.empty()) << testing::PrintToString(r.warnings);
}

TEST_F(ValidationTest, TuningMethod) {
  ExpectOk(Tuning(absl::StrReplaceAll(kGoodTuning, {{"qlora", "lora"}})));
  ExpectOk(Tuning(absl::StrReplaceAll(kGoodTuning, {{"qlora", "QLoRA"}})));
  ExpectError(Tuning(absl::StrReplaceAll(kGoodTuning, {{"qlora", "full"}})),
              "tuning.method: Unsupported value: \"full\"");
}

TEST_F(ValidationTest, TuningPresetRequiredAndKnown) {
  ExpectError(Tuning("  method: lora\n  input: {urls: [\"https://e.com/d\"]}\n  output: {image: \"e.com/o:1\", imagePushSecret: s}\n"),
              "tuning.preset: Required value");
  ExpectError(Tuning(absl::StrReplaceAll(kGoodTuning, {{"phi-3-mini-128k-instruct", "nope"}})),
              "Unsupported tuning preset name nope");
}

TEST_F(ValidationTest, TuningSupportChecked) {
  ExpectError(Tuning(absl::StrReplaceAll(kGoodTuning, {{"phi-3-mini-128k-instruct", "gemma-3-4b-instruct"}})),
              "Model gemma-3-4b-instruct does not support tuning");
}

TEST_F(ValidationTest, EveryTunableModelTunes) {
  for (const ModelPreset& m : TheCatalog().models()) {
    if (!m.tuning || m.deprecated) continue;
    SCOPED_TRACE(m.name);
    ExpectOk(Tuning(absl::StrReplaceAll(kGoodTuning, {{"phi-3-mini-128k-instruct", m.name}}),
                    "  instanceType: Standard_ND96isr_H100_v5\n  labelSelector: {matchLabels: {a: b}}\n"));
  }
}

TEST_F(ValidationTest, TuningInputRequired) {
  ExpectError(Tuning("  preset: {name: phi-4}\n  method: lora\n  output: {image: \"e.com/o:1\", imagePushSecret: s}\n"),
              "tuning.input: Required value");
}

TEST_F(ValidationTest, TuningInputExactlyOneSource) {
  ExpectError(Tuning("  preset: {name: phi-4}\n  method: lora\n"
                     "  input: {urls: [\"https://e.com/d\"], image: \"e.com/d:1\"}\n"
                     "  output: {image: \"e.com/o:1\", imagePushSecret: s}\n"),
              "Exactly one of URLs, Volume, or Image must be specified");
  ExpectError(Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {name: only-a-name}\n"
                     "  output: {image: \"e.com/o:1\", imagePushSecret: s}\n"),
              "Exactly one of URLs, Volume, or Image must be specified");
  ExpectOk(Tuning("  preset: {name: phi-4}\n  method: lora\n"
                  "  input: {volumeSource: {persistentVolumeClaim: {claimName: data}}}\n"
                  "  output: {volumeSource: {persistentVolumeClaim: {claimName: out}}}\n"));
}

std::string WithUrl(const std::string& url) {
  return Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {urls: [\"" + url + "\"]}\n"
                "  output: {image: \"e.com/o:1\", imagePushSecret: s}\n");
}

TEST_F(ValidationTest, InputUrlsAccepted) {
  for (const char* url : {"https://huggingface.co/datasets/x/resolve/main/d.parquet?download=true",
                          "http://example.com/d.json", "https://8.8.8.8/d", "https://[2001:db8::1]/d",
                          "https://user@example.com:8443/d"}) {
    ExpectOk(WithUrl(url));
  }
}

TEST_F(ValidationTest, InputUrlsSsrfGuard) {
  for (const char* url : {"http://localhost/x", "http://foo.localhost/x", "http://LOCALHOST./x",
                          "http://127.0.0.1/x", "http://10.1.2.3/x", "http://172.16.0.1/x",
                          "http://172.31.255.255/x", "http://192.168.1.1/x", "http://169.254.169.254/latest",
                          "http://metadata.google.internal/x", "http://metadata.google/x",
                          "http://instance-data.ec2.internal/x", "http://[::1]/x", "http://[fe80::1]/x",
                          "http://[fd00::1]/x", "http://0.0.0.0/x", "http://[::ffff:127.0.0.1]/x",
                          "http://user@127.0.0.1:80/x"}) {
    SCOPED_TRACE(url);
    ExpectError(WithUrl(url), "points at a");
  }
}

TEST_F(ValidationTest, InputUrlsMalformed) {
  ExpectError(WithUrl("ftp://example.com/x"), "must use http or https");
  ExpectError(WithUrl("example.com/x"), "has no scheme");
  ExpectError(WithUrl("https:///x"), "has no host");
  ExpectOk(WithUrl("http://172.32.0.1/x"));  // Outside 172.16/12.
}

TEST_F(ValidationTest, InputImageReference) {
  auto with = [](const std::string& image) {
    return Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {image: \"" + image + "\"}\n"
                  "  output: {image: \"e.com/o:1\", imagePushSecret: s}\n");
  };
  for (const char* ok : {"busybox", "library/busybox:1.36", "myacr.azurecr.io/data/set:v1",
                         "localhost:5000/data:latest",
                         "e.com/d@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}) {
    ExpectOk(with(ok));
  }
  for (const char* bad : {"Upper/Case:1", "e.com/UPPER:1", "e.com/d:bad tag", "e.com//d", "e.com/d@sha256:xyz",
                          "ACR_REPO_HERE.azurecr.io/x:1"}) {
    SCOPED_TRACE(bad);
    ExpectError(with(bad), "invalid reference format");
  }
}

TEST_F(ValidationTest, OutputImageIsParsedOnCreateAndPlaceholdersAreNamed) {
  auto with = [](const std::string& image) {
    return Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {urls: [\"https://e.com/d\"]}\n"
                  "  output: {image: \"" + image + "\", imagePushSecret: s}\n");
  };
  ExpectOk(with("myregistry.azurecr.io/phi-3-adapter:0.0.1"));
  // The seed document's literal placeholder: rejected on create, with what to do.
  ExpectError(with("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1"),
              "tuning.output.image: Invalid value: invalid reference format");
  ExpectError(with("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1"),
              "it looks like a placeholder: replace it with your registry and repository");
  ExpectError(with("e.com/Upper:1"), "repository name must be lowercase");
}

TEST_F(ValidationTest, MissingPushSecretIsAWarningNotAnError) {
  const std::string yaml =
      Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {urls: [\"https://e.com/d\"]}\n"
             "  output: {image: \"e.com/o:1\", imagePushSecret: not-yet}\n");
  ExpectOk(yaml);
  ExpectWarning(yaml, "tuning.output.imagePushSecret: Secret");
  ExpectWarning(yaml, "not-yet");
  ExpectWarning(yaml, "not found in namespace");
}

// Inputs that make backtracking regex engines take exponential time, or recurse per
// character, are answered at once.
TEST_F(ValidationTest, HostileImageAndProfileInputsAreCheap) {
  for (const std::string& image :
       {std::string(240, 'a') + "!", "e.com/" + std::string(240, 'a') + "-",
        std::string(200, 'a') + "." + std::string(200, 'b'), std::string(100000, 'a'),
        "e.com/" + std::string(60, 'a') + std::string(60, '-') + "!"}) {
    EXPECT_NE(CheckImageReference(image), "") << image.substr(0, 40);
  }
  EXPECT_EQ(CheckImageReference("e.com/a--b__c.d/e-f:v1.2"), "");
  EXPECT_NE(CheckImageReference("e.com/a___b:1"), "") << "three underscores";
  EXPECT_NE(CheckImageReference("-bad.com:5000/x"), "");
  EXPECT_NE(CheckImageReference("e.com:port/x"), "");
  Byo();
  options_.enable_mig = true;
  ExpectError(Inference(std::string(kByoResource) + "  partition: {mode: mig, profile: \"" +
                            std::string(200000, '1') + "\"}\n"),
              "a MIG profile looks like 1g.10gb");
}

TEST_F(ValidationTest, TuningOutput) {
  ExpectError(Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {urls: [\"https://e.com/d\"]}\n"),
              "tuning.output: Required value");
  ExpectError(Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {urls: [\"https://e.com/d\"]}\n"
                     "  output: {image: \"e.com/o:1\"}\n"),
              "Must specify imagePushSecret with destination image");
  ExpectError(Tuning("  preset: {name: phi-4}\n  method: lora\n  input: {urls: [\"https://e.com/d\"]}\n"
                     "  output: {image: \"e.com/o:1\", imagePushSecret: s, volumeSource: {emptyDir: {}}}\n"),
              "Exactly one of Volume or Image must be specified");
}

TEST_F(ValidationTest, TuningConfigMap) {
  const std::string with_config = std::string(kGoodTuning) + "  config: tcfg\n";
  ExpectError(Tuning(with_config), "ConfigMap 'tcfg' specified in 'config' not found");
  ctx_.AddConfigMap("tcfg", "training_config.yaml",
                    "training_config:\n  ModelConfig: {torch_dtype: bfloat16}\n"
                    "  QuantizationConfig: {load_in_4bit: true}\n"
                    "  TrainingArguments: {output_dir: /mnt/results}\n");
  ExpectOk(Tuning(with_config));
}

TEST_F(ValidationTest, BuiltInTemplatesByName) {
  ExpectOk(Tuning(std::string(kGoodTuning) + "  config: qlora-params-template\n"));
  // A template used with the other method fails its quantization rule.
  ExpectError(Tuning(std::string(kGoodTuning) + "  config: lora-params-template\n"),
              "QLoRA tuning needs load_in_4bit");
}

TEST(TrainingConfigTest, BuiltInTemplatesAreValid) {
  EXPECT_TRUE(CheckTrainingConfig(kLoraTrainingConfig, "lora").empty());
  EXPECT_TRUE(CheckTrainingConfig(kQloraTrainingConfig, "qlora").empty());
  EXPECT_FALSE(CheckTrainingConfig(kLoraTrainingConfig, "qlora").empty());
}

struct TrainingConfigCase {
  const char* yaml;
  const char* method;
  const char* problem;  // Empty when valid.
};

TEST(TrainingConfigTest, Rules) {
  const TrainingConfigCase cases[] = {
      {"training_config: {QuantizationConfig: {load_in_4bit: true}}", "qlora", ""},
      {"training_config: {QuantizationConfig: {load_in_8bit: true}}", "qlora", ""},
      {"training_config: {QuantizationConfig: {load_in_4bit: false}}", "lora", ""},
      {"training_config: {LoraConfig: {r: 8}}", "lora", ""},
      {"training_config: {LoraConfig: {r: 8}}", "qlora", "QLoRA tuning needs load_in_4bit"},
      {"training_config: {QuantizationConfig: {load_in_4bit: true}}", "lora", "LoRA tuning must not quantize"},
      {"training_config: {QuantizationConfig: {load_in_4bit: true, load_in_8bit: true}}", "qlora", "cannot both be true"},
      {"training_config: {QuantizationConfig: {load_in_4bit: maybe}}", "qlora", "must be a boolean"},
      {"training_config: {Bogus: {}}", "lora", "Unrecognized section Bogus"},
      {"training_config: [1, 2]", "lora", "training_config: must be a map"},
      {"other: 1", "lora", "training_config: must be a map"},
      {"training_config: {TrainingArguments: {output_dir: /mnt/results}}", "lora", ""},
      {"training_config: {TrainingArguments: {output_dir: /mnt/a/../b}}", "lora", ""},
      {"training_config: {TrainingArguments: {output_dir: /mnt}}", "lora", "must be a directory under /mnt"},
      {"training_config: {TrainingArguments: {output_dir: /mnt/../etc}}", "lora", "must be a directory under /mnt"},
      {"training_config: {TrainingArguments: {output_dir: results}}", "lora", "must be a directory under /mnt"},
      {"training_config: {TrainingArguments: {output_dir: [a]}}", "lora", "must be a string"},
      {"training_config: {unclosed", "lora", "not valid YAML"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto problems = CheckTrainingConfig(c.yaml, c.method);
    if (std::string(c.problem).empty()) {
      EXPECT_TRUE(problems.empty()) << testing::PrintToString(problems);
    } else {
      EXPECT_THAT(testing::PrintToString(problems), HasSubstr(c.problem));
    }
  }
}

// --- Update rules 29-33 ------------------------------------------------------------------------

TEST_F(ValidationTest, UpdateCannotToggleInferenceAndTuning) {
  ExpectUpdateError(Inference(), Tuning(kGoodTuning), "Inference field cannot be toggled once set");
  ExpectUpdateError(Tuning(kGoodTuning), Inference(), "Tuning field cannot be toggled once set");
}

TEST_F(ValidationTest, UpdateCountAndSelectorImmutable) {
  const std::string v1 = Inference("  count: 1\n" + std::string(kNapResource));
  ExpectUpdateError(v1, Inference("  count: 2\n" + std::string(kNapResource)), "resource.count: field is immutable");
  ExpectUpdateError(Inference(), Inference("  instanceType: Standard_NC24ads_A100_v4\n  labelSelector: {matchLabels: {apps: other}}\n"),
                    "resource.labelSelector: field is immutable");
}

TEST_F(ValidationTest, UpdateInstanceTypeUnderNap) {
  ExpectUpdateError(Inference(), Inference("  instanceType: Standard_NC48ads_A100_v4\n  labelSelector: {matchLabels: {apps: phi}}\n"),
                    "instanceType cannot be changed once set when node auto-provisioning is enabled");
  ExpectUpdateError(Inference(), Inference(kByoResource),
                    "instanceType is required when node auto-provisioning is enabled");
}

TEST_F(ValidationTest, UpdateInstanceTypeUnderByo) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "NVIDIA-A100-SXM4-80GB", 1, 81920);
  // Set before BYO (an upgrade from an older release): may be cleared, not changed.
  ExpectUpdateOk(Inference(), Inference(kByoResource));
  ExpectUpdateError(Inference(), Inference("  instanceType: Standard_NC48ads_A100_v4\n  labelSelector: {matchLabels: {apps: phi}}\n"),
                    "resource.instanceType: field is immutable");
  ExpectUpdateError(Inference(kByoResource), Inference(), "instanceType must be empty when node auto-provisioning is disabled");
}

TEST_F(ValidationTest, UpdatePresetImmutable) {
  ExpectUpdateError(Inference(), Inference(kNapResource, "  preset: {name: phi-4}\n"), "inference.preset: field is immutable");
}

TEST_F(ValidationTest, MetadataOnlyUpdateIsNotBlockedByTheWorld) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "NVIDIA-A100-SXM4-80GB", 1, 81920);
  const std::string ws = Inference(kByoResource);
  ExpectOk(ws);
  ctx_.nodes.clear();  // The nodes went away.
  ExpectUpdateOk(ws, absl::StrReplaceAll(ws, {{"name: ws\n", "name: ws\n  labels: {team: ml}\n"}}));
  // A spec change is checked against the world again.
  ExpectUpdateError(ws, Inference(kByoResource, Adapters(1)), "No nodes found");
  // Annotations are still checked.
  ExpectUpdateError(ws, Inference(kByoResource, "  preset: {name: phi-4-mini-instruct}\n",
                                  "    kaito.sh/performance-mode: fast\n"),
                    "performance-mode");
}

TEST_F(ValidationTest, UpdateAdaptersAllowed) {
  ExpectUpdateOk(Inference(kNapResource, "  preset: {name: phi-4}\n"), Inference(kNapResource, Adapters(2)));
  ExpectUpdateError(Inference(kNapResource, "  preset: {name: phi-4}\n"), Inference(kNapResource, Adapters(11)),
                    "maximum of 10 allowed");
}

TEST_F(ValidationTest, UpdateTemplateSetAndUnset) {
  const std::string t1 = Inference(kNapResource, "  template: {spec: {containers: [{name: c, image: nginx}]}}\n");
  const std::string t2 = Inference(kNapResource, "  template: {spec: {containers: [{name: c, image: nginx:2}]}}\n");
  ExpectUpdateOk(t1, t2);
  ExpectUpdateError(t1, Inference(kNapResource, "  preset: {name: phi-4}\n"), "field cannot be unset if it was set");
  ExpectUpdateError(Inference(), t1, "field cannot be set if it was unset");
}

TEST_F(ValidationTest, UpdateTuningImmutables) {
  const std::string base = Tuning(kGoodTuning);
  ExpectUpdateError(base, Tuning(absl::StrReplaceAll(kGoodTuning, {{"qlora", "lora"}})), "Method cannot be changed");
  ExpectUpdateError(base, Tuning(absl::StrReplaceAll(kGoodTuning, {{"phi-3-mini-128k-instruct", "phi-4"}})),
                    "Preset cannot be changed");
  ExpectUpdateOk(base, Tuning(absl::StrReplaceAll(kGoodTuning, {{"data.parquet", "data-v2.parquet"}})));
  ExpectUpdateError(base, Tuning(absl::StrReplaceAll(kGoodTuning, {{"example.azurecr.io/adapter", "Example.azurecr.io/Adapter"}})),
                    "tuning.output.image: Invalid value");
}

TEST_F(ValidationTest, UpdateInputNameImmutable) {
  const std::string named = absl::StrReplaceAll(kGoodTuning, {{"input: {urls", "input: {name: a, urls"}});
  ExpectUpdateError(Tuning(named), Tuning(absl::StrReplaceAll(named, {{"name: a,", "name: b,"}})),
                    "tuning.input.name: field is immutable");
}

// --- v1alpha1 (§2.3) ---------------------------------------------------------------------------

TEST_F(ValidationTest, V1alpha1DefaultsInstanceTypeAndIgnoresNapMode) {
  Byo();
  ExpectOk(Inference(kByoResource, "  preset: {name: phi-4-mini-instruct}\n", "", "kaito.sh/v1alpha1"));
  ExpectOk(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n", "", "kaito.sh/v1alpha1"));
}

TEST_F(ValidationTest, V1alpha1UnknownSku) {
  ExpectError(Inference("  instanceType: Standard_Bad\n  labelSelector: {matchLabels: {a: b}}\n",
                        "  preset: {name: phi-4-mini-instruct}\n", "", "kaito.sh/v1alpha1"),
              "Unsupported instance type Standard_Bad");
}

TEST_F(ValidationTest, V1alpha1InstanceTypeImmutable) {
  ExpectUpdateError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct}\n", "", "kaito.sh/v1alpha1"),
                    Inference("  instanceType: Standard_NC48ads_A100_v4\n  labelSelector: {matchLabels: {apps: phi}}\n",
                              "  preset: {name: phi-4-mini-instruct}\n", "", "kaito.sh/v1alpha1"),
                    "resource.instanceType: field is immutable");
}

TEST_F(ValidationTest, V1alpha1PrivatePresetNeedsImage) {
  ExpectError(Inference(kNapResource, "  preset: {name: phi-4-mini-instruct, accessMode: private}\n", "", "kaito.sh/v1alpha1"),
              "inference.preset.presetOptions.image: Required value");
}

TEST_F(ValidationTest, V1alpha1NoPartition) {
  ExpectError(Inference(kNapResource + std::string("  partition: {mode: mig, profile: 1g.10gb}\n"),
                        "  preset: {name: phi-4-mini-instruct}\n", "", "kaito.sh/v1alpha1"),
              "partition is not part of kaito.sh/v1alpha1");
}

// --- Beyond Kaito: warnings ----------------------------------------------------------------------

TEST_F(ValidationTest, SeedDocumentIsAcceptedWithWarnings) {
  Result r = Check(Tuning(kGoodTuning,
                          "  instanceType: \"Standard_NC6s_v3\"\n  labelSelector: {matchLabels: {app: tuning-phi-3}}\n",
                          "kaito.sh/v1alpha1"));
  EXPECT_TRUE(r.ok()) << r.errors;
  const std::string w = testing::PrintToString(r.warnings);
  EXPECT_THAT(w, HasSubstr("Standard_NC6s_v3 (1x V100) is retired"));
  EXPECT_THAT(w, HasSubstr("compute capability 7.0), which cannot run bfloat16"));
  EXPECT_THAT(w, HasSubstr("e.g. Standard_NV36ads_A10_v5 or Standard_NC24ads_A100_v4"));
  EXPECT_THAT(w, HasSubstr("needs about 72Gi of GPU memory"));
}

TEST_F(ValidationTest, T4WarnsAboutBfloat16) {
  ExpectWarning(Inference("  instanceType: Standard_NC4as_T4_v3\n  labelSelector: {matchLabels: {a: b}}\n"),
                "compute capability 7.5), which cannot run bfloat16");
}

TEST_F(ValidationTest, QuantizedModelOnOldGpuHasNoDtypeWarning) {
  Result r = Check(Inference("  instanceType: Standard_NC24s_v3\n  labelSelector: {matchLabels: {a: b}}\n",
                             "  preset: {name: gpt-oss-20b}\n"));
  EXPECT_TRUE(r.ok()) << r.errors;
  EXPECT_THAT(testing::PrintToString(r.warnings), ::testing::Not(HasSubstr("bfloat16")));
}

TEST_F(ValidationTest, ByoOldGpuWarns) {
  Byo();
  ctx_.AddGpuNode("n1", "phi", "Tesla-V100", 1, 16384, "7.0");
  ExpectWarning(Inference(kByoResource), "n1 has Tesla-V100 GPUs (compute capability 7.0)");
}

TEST_F(ValidationTest, NoWarningsForAGoodWorkspace) {
  Result r = Check(Inference());
  EXPECT_TRUE(r.ok()) << r.errors;
  EXPECT_TRUE(r.warnings.empty()) << testing::PrintToString(r.warnings);
}

TEST_F(ValidationTest, AllProblemsReportedAtOnce) {
  Result r = Check(Inference("  instanceType: Standard_Bad\n",
                             "  preset: {name: llama-3.1-8b-instruct}\n"
                             "  adapters:\n  - source: {name: a}\n    strength: \"2\"\n",
                             "    kaito.sh/performance-mode: fast\n"));
  for (const char* part : {"performance-mode", "modelAccessSecret", "Either Image or Volume",
                           "must be a number between 0 and 1", "vLLM does not support adapter strength",
                           "resource.labelSelector: Required value", "Unsupported instance type Standard_Bad"}) {
    EXPECT_THAT(r.errors, HasSubstr(part));
  }
}

}  // namespace
}  // namespace kaito::presets

namespace kaito::presets {
namespace {

TEST(ValidationCatalogTest, VllmDisallowLoraModelRejectsAdapters) {
  auto catalog = Catalog::Parse(
      "models:\n  - {name: no-lora, id: org/no-lora, weights: 1Gi, disk: 2Gi, disallowLoRA: true}\n",
      "azure:\n  - {name: Standard_NC24ads_A100_v4, gpuModel: A100, gpuCount: 1, gpuMemory: 80Gi, "
      "computeCapability: \"8.0\"}\n");
  ASSERT_TRUE(catalog.ok()) << catalog.status();
  WorkspaceValidator validator(&*catalog, ValidationOptions{.node_auto_provisioning = true});
  FakeContext ctx;
  FieldErrors errors;
  std::vector<std::string> warnings;
  v1::Workspace ws = Parse(Inference(kNapResource,
                                     "  preset: {name: no-lora}\n  adapters:\n"
                                     "  - source: {name: a, image: \"e.com/a:1\"}\n"));
  validator.Validate(ws, nullptr, ctx, errors, warnings);
  EXPECT_THAT(std::string(errors.ToStatus("ws").message()),
              HasSubstr("inference.adapters: vLLM does not support LoRA adapters for no-lora"));
}

}  // namespace
}  // namespace kaito::presets
