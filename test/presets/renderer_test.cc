// Rendering golden files: one per runtime, multi-node, adapters, tuning and templates.
// The goldens are test/presets/golden/*.yaml; after an intended change, regenerate them
// with KAITO_UPDATE_GOLDEN=1 and review the diff.
#include "presets/renderer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/manifest_codec.h"
#include "support/process.h"

namespace kaito::presets {
namespace {

using ::testing::HasSubstr;

const Catalog& TheCatalog() {
  static const Catalog* catalog = new Catalog(*Catalog::Embedded());
  return *catalog;
}

v1::Workspace Parse(const std::string& yaml) {
  auto docs = ParseManifests(yaml);
  EXPECT_TRUE(docs.ok() && (*docs)[0].status.ok()) << yaml;
  v1::Workspace ws = static_cast<const v1::Workspace&>(*(*docs)[0].object);
  ws.mutable_metadata()->set_namespace_("default");
  return ws;
}

std::vector<v1::WorkloadSpec> Render(const std::string& yaml, const std::string& sku, int nodes,
                                     const std::string& runtime = "vllm") {
  v1::Workspace ws = Parse(yaml);
  RenderInput in;
  in.workspace = &ws;
  const std::string& preset =
      ws.has_tuning() ? ws.tuning().preset().name() : ws.inference().preset().name();
  in.model = preset.empty() ? nullptr : TheCatalog().FindModel(preset);
  const Sku* s = TheCatalog().FindSku("azure", sku);
  EXPECT_NE(s, nullptr) << sku;
  in.gpu = GpuConfig::FromSku(*s);
  in.nvme = s->nvme;
  in.nodes = nodes;
  in.runtime = runtime;
  auto out = RenderWorkloads(RenderOptions(), in);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : std::vector<v1::WorkloadSpec>{};
}

void CheckGolden(const std::string& name, const std::vector<v1::WorkloadSpec>& workloads) {
  std::string text;
  for (size_t i = 0; i < workloads.size(); ++i) {
    if (i > 0) text += "---\n";
    text += MessageToYaml(workloads[i]);
  }
  const std::string path = testing::Env("KAITO_SOURCE_DIR") + "/test/presets/golden/" + name + ".yaml";
  if (!testing::Env("KAITO_UPDATE_GOLDEN").empty()) {
    std::ofstream(path) << text;
    return;
  }
  EXPECT_EQ(testing::ReadFile(path), text) << "golden " << path
                                           << " differs; rerun with KAITO_UPDATE_GOLDEN=1 to update";
}

TEST(RendererTest, VllmSingleNode) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-phi-4-mini}
resource: {instanceType: Standard_NV36ads_A10_v5, labelSelector: {matchLabels: {apps: phi-4-mini}}}
inference: {preset: {name: phi-4-mini-instruct}}
)", "Standard_NV36ads_A10_v5", 1);
  ASSERT_EQ(w.size(), 1u);
  const std::string cmd = CommandLine(w[0].containers(0));
  EXPECT_THAT(cmd, HasSubstr("--model=microsoft/Phi-4-mini-instruct"));
  EXPECT_THAT(cmd, HasSubstr("--gpu-memory-utilization=0.82")) << "A10 uses 0.82";
  EXPECT_THAT(cmd, HasSubstr("--tensor-parallel-size=1"));
  EXPECT_THAT(cmd, ::testing::Not(HasSubstr("--kaito-kv-cache-cpu-memory-utilization=0")));
  EXPECT_EQ(w[0].containers(0).startup_probe().failure_threshold(), 180) << "clamped to 30 min";
  CheckGolden("vllm_single_node", w);
}

TEST(RendererTest, VllmMultiNodeLeaderAndWorker) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-llama-3-3-70b-instruct}
resource: {instanceType: Standard_NC48ads_A100_v4, labelSelector: {matchLabels: {apps: llama}}}
inference:
  preset: {name: llama-3.3-70b-instruct, presetOptions: {modelAccessSecret: hf-token}}
  config: llama-inference-params
)", "Standard_NC48ads_A100_v4", 2);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].role(), "leader");
  EXPECT_EQ(w[1].role(), "worker");
  EXPECT_THAT(CommandLine(w[0].containers(0)), HasSubstr("--pipeline-parallel-size=2 --distributed-executor-backend=ray"));
  EXPECT_THAT(CommandLine(w[1].containers(0)), HasSubstr("worker --ray_address=${KAITO_LEADER_ADDRESS}"));
  EXPECT_FALSE(w[1].containers(0).has_readiness_probe()) << "only the leader serves";
  CheckGolden("vllm_multi_node", w);
}

TEST(RendererTest, VllmDataParallelOnFourGpus) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-phi-4-mini}
resource: {instanceType: Standard_NC96ads_A100_v4, labelSelector: {matchLabels: {apps: phi}}}
inference: {preset: {name: phi-4-mini-instruct}}
)", "Standard_NC96ads_A100_v4", 1);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_THAT(CommandLine(w[0].containers(0)), HasSubstr("--data-parallel-size=4 --tensor-parallel-size=1"));
  EXPECT_EQ(w[0].gpus(), 4);
}

TEST(RendererTest, TransformersWithAdapters) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: workspace-phi-3-mini-adapter
  annotations: {kaito.sh/runtime: transformers}
resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {apps: phi}}}
inference:
  preset: {name: phi-3-mini-128k-instruct}
  adapters:
  - source: {name: phi-3-adapter, image: "example.azurecr.io/adapter:0.0.1", imagePullSecrets: [acr]}
    strength: "0.5"
  - source: {name: local-adapter, volumeSource: {persistentVolumeClaim: {claimName: adapters}}}
)", "Standard_NC24ads_A100_v4", 1, "transformers");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_THAT(CommandLine(w[0].containers(0)), HasSubstr("accelerate launch --num_processes=1"));
  ASSERT_EQ(w[0].init_containers_size(), 1);
  EXPECT_EQ(w[0].init_containers(0).name(), "puller-phi-3-adapter");
  CheckGolden("transformers_adapters", w);
}

TEST(RendererTest, TuningQloraUrlToImage) {
  auto w = Render(R"(apiVersion: kaito.sh/v1alpha1
kind: Workspace
metadata: {name: workspace-tuning-phi-3}
resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {app: tuning-phi-3}}}
tuning:
  preset: {name: phi-3-mini-128k-instruct}
  method: qlora
  input: {urls: ["https://example.com/datasets/train.parquet?download=true"]}
  output: {image: "example.azurecr.io/adapter:0.0.1", imagePushSecret: acr-secret}
)", "Standard_NC24ads_A100_v4", 1);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].restart_policy(), "Never");
  EXPECT_EQ(w[0].containers_size(), 1) << "the agent pushes: no pusher container";
  // The agent downloads the input itself, into the data volume, under the URL's base name.
  ASSERT_EQ(w[0].downloads_size(), 1);
  EXPECT_EQ(w[0].downloads(0).url(), "https://example.com/datasets/train.parquet?download=true");
  EXPECT_EQ(w[0].downloads(0).volume(), "data-volume");
  EXPECT_EQ(w[0].downloads(0).file_name(), "train.parquet");
  for (const auto& c : w[0].init_containers()) EXPECT_NE(c.name(), "data-downloader");
  ASSERT_TRUE(w[0].has_push());
  EXPECT_EQ(w[0].push().image(), "example.azurecr.io/adapter:0.0.1");
  EXPECT_EQ(w[0].push().volume(), "results-volume");
  EXPECT_EQ(w[0].push().completion_marker(), "fine_tuning_completed.txt");
  EXPECT_EQ(w[0].push().secret(), "acr-secret");
  EXPECT_EQ(w[0].push().annotations().at("sh.kaito.model.name"), "phi-3-mini-128k-instruct");
  CheckGolden("tuning_qlora", w);
}

TEST(RendererTest, TuningVolumes) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-tuning-phi-4}
resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {app: t}}}
tuning:
  preset: {name: phi-4}
  method: lora
  config: my-lora
  input: {volumeSource: {persistentVolumeClaim: {claimName: data}}}
  output: {volumeSource: {persistentVolumeClaim: {claimName: results}}}
)", "Standard_NC24ads_A100_v4", 1);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].containers_size(), 1) << "no pusher for a volume destination";
  CheckGolden("tuning_volumes", w);
}

TEST(RendererTest, CustomTemplate) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-custom-llm}
resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {apps: custom}}}
inference:
  template:
    spec:
      containers:
      - name: custom-llm-container
        image: ghcr.io/huggingface/text-generation-inference:0.9
        command: ["text-generation-launcher"]
        args: ["--model-id", "tiiuae/falcon-7b", "--num-shard", "1", "--port", "5000"]
        ports: [{containerPort: 5000}]
        resources: {limits: {nvidia.com/gpu: 1}}
        env: [{name: A, value: b}]
)", "Standard_NC24ads_A100_v4", 1);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].gpus(), 1);
  CheckGolden("custom_template", w);
}

TEST(RendererTest, CustomTemplateKeepsReadinessProbeAndVolumes) {
  // Kaito's custom-model example: the agent must know when the server answers /health, and
  // mount the shared memory volume the template declares.
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-custom-llm}
resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {apps: custom}}}
inference:
  template:
    spec:
      containers:
      - name: server
        image: example.com/server:1
        ports: [{containerPort: 5000}]
        readinessProbe:
          httpGet: {path: /health, port: 5000, scheme: HTTP}
          initialDelaySeconds: 30
          periodSeconds: 10
          timeoutSeconds: 2
          failureThreshold: 3
        volumeMounts: [{name: dshm, mountPath: /dev/shm}, {name: data, mountPath: /data, readOnly: true}]
      - name: sidecar
        image: example.com/sidecar:1
        readinessProbe: {exec: {command: [cat, /tmp/ready]}}
      volumes:
      - {name: dshm, emptyDir: {medium: Memory}}
      - {name: data, hostPath: {path: /srv/data}}
      terminationGracePeriodSeconds: 5
)", "Standard_NC24ads_A100_v4", 1);
  EXPECT_EQ(w[0].termination_grace_period_seconds(), 5);
  ASSERT_EQ(w.size(), 1u);
  ASSERT_EQ(w[0].containers_size(), 2);
  const v1::Probe& p = w[0].containers(0).readiness_probe();
  EXPECT_EQ(p.http_path(), "/health");
  EXPECT_EQ(p.port(), 5000);
  EXPECT_EQ(p.initial_delay_seconds(), 30);
  EXPECT_EQ(p.period_seconds(), 10);
  EXPECT_EQ(p.timeout_seconds(), 2);
  EXPECT_EQ(p.failure_threshold(), 3);
  ASSERT_EQ(w[0].containers(0).volume_mounts_size(), 2);
  EXPECT_EQ(w[0].containers(0).volume_mounts(0).mount_path(), "/dev/shm");
  EXPECT_TRUE(w[0].containers(0).volume_mounts(1).read_only());
  EXPECT_EQ(w[0].containers(1).readiness_probe().exec_size(), 2);
  ASSERT_EQ(w[0].volumes_size(), 2);
  EXPECT_EQ(w[0].volumes(0).empty_dir_medium(), "Memory");
  EXPECT_NE(w[0].volumes(1).volume_source_json().find("/srv/data"), std::string::npos);
}

TEST(RendererTest, ImageWeightsModelPullsWeights) {
  auto w = Render(R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: workspace-falcon-7b, annotations: {kaito.sh/runtime: transformers}}
resource: {instanceType: Standard_NC24ads_A100_v4, labelSelector: {matchLabels: {apps: falcon}}}
inference: {preset: {name: falcon-7b}}
)", "Standard_NC24ads_A100_v4", 1, "transformers");
  ASSERT_EQ(w.size(), 1u);
  ASSERT_EQ(w[0].init_containers_size(), 1);
  EXPECT_EQ(w[0].init_containers(0).name(), "model-weights-downloader");
  EXPECT_THAT(CommandLine(w[0].containers(0)), HasSubstr("--pretrained_model_name_or_path=/workspace/weights"));
}

TEST(RendererTest, RenderingIsDeterministic) {
  const std::string yaml = R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: w}
resource: {instanceType: Standard_NC48ads_A100_v4, labelSelector: {matchLabels: {a: b}}}
inference: {preset: {name: llama-3.3-70b-instruct}}
)";
  auto a = Render(yaml, "Standard_NC48ads_A100_v4", 2);
  auto b = Render(yaml, "Standard_NC48ads_A100_v4", 2);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].SerializeAsString(), b[i].SerializeAsString());
}

TEST(RendererTest, BadInput) {
  v1::Workspace ws = Parse("apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata: {name: w}\ninference: {preset: {name: phi-4}}\n");
  RenderInput in;
  in.workspace = &ws;
  EXPECT_FALSE(RenderWorkloads(RenderOptions(), in).ok()) << "no model";
  in.model = TheCatalog().FindModel("phi-4");
  EXPECT_FALSE(RenderWorkloads(RenderOptions(), in).ok()) << "no GPUs";
}

}  // namespace
}  // namespace kaito::presets
