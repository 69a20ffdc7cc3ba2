#include "presets/renderer.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <set>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "presets/tuning_defaults.h"

namespace kaito::presets {
namespace {

constexpr int kHttpPort = 5000;
constexpr int kRayPort = 6379;
constexpr int kRayDashboardPort = 8265;
constexpr int kKvEventsPort = 5557;
constexpr char kWeightsDir[] = "/workspace/weights";
constexpr char kConfigDir[] = "/mnt/config";
constexpr char kAdapterDir[] = "/mnt/adapter";
constexpr char kDataDir[] = "/mnt/data";
constexpr char kResultsDir[] = "/mnt/results";
constexpr char kDefaultInferenceConfig[] = "inference-params-template";

std::string BaseImage(const RenderOptions& o) {
  return o.registry + "/kaito-base:" + o.base_tag;
}

void AddEnv(v1::ContainerSpec& c, const std::string& name, const std::string& value) {
  auto* e = c.add_env();
  e->set_name(name);
  e->set_value(value);
}

void AddMount(v1::ContainerSpec& c, const std::string& name, const std::string& path,
              bool read_only = false) {
  auto* m = c.add_volume_mounts();
  m->set_name(name);
  m->set_mount_path(path);
  m->set_read_only(read_only);
}

void AddPort(v1::ContainerSpec& c, const std::string& name, int port) {
  auto* p = c.add_ports();
  p->set_name(name);
  p->set_container_port(port);
}

v1::Volume* AddVolume(v1::WorkloadSpec& w, const std::string& name) {
  auto* v = w.add_volumes();
  v->set_name(name);
  return v;
}

std::string StructJson(const google::protobuf::Struct& s) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(s, &out);
  return out;
}

// Kaito: startup budget = clamp(15 min + 18 s per GiB of weights, 30 min, 180 min).
int StartupFailureThreshold(const ModelPreset& model) {
  const double gib = static_cast<double>(model.weights_bytes) / static_cast<double>(kGiB);
  const double seconds = std::clamp(900.0 + 18.0 * gib, 1800.0, 10800.0);
  return static_cast<int>(std::ceil(seconds / 10.0));
}

void AddHealthProbes(v1::ContainerSpec& c, const ModelPreset& model) {
  auto* startup = c.mutable_startup_probe();
  startup->set_http_path("/health");
  startup->set_port(kHttpPort);
  startup->set_period_seconds(10);
  startup->set_failure_threshold(StartupFailureThreshold(model));
  auto* liveness = c.mutable_liveness_probe();
  liveness->set_http_path("/health");
  liveness->set_port(kHttpPort);
  liveness->set_period_seconds(10);
  liveness->set_failure_threshold(3);
  auto* readiness = c.mutable_readiness_probe();
  readiness->set_http_path("/health");
  readiness->set_port(kHttpPort);
  readiness->set_initial_delay_seconds(30);
  readiness->set_period_seconds(10);
}

bool IsHybridKvArchitecture(const ModelPreset& m) {
  for (const char* a : {"NemotronH", "Gemma4", "Qwen3_5", "Qwen3Next", "DeepseekV32", "DeepseekV4"}) {
    if (absl::StrContains(m.architecture, a)) return true;
  }
  return false;
}

// The vLLM server command of Kaito's wrapper.
std::vector<std::string> VllmArgs(const v1::Workspace& ws, const ModelPreset& m, const GpuConfig& gpu,
                                  int nodes, bool has_adapters) {
  std::vector<std::string> a = {"python3", "/workspace/vllm/inference_api.py"};
  a.push_back("--model=" + m.id);
  if (m.download_at_runtime) a.push_back(absl::StrCat("--download-dir=", kWeightsDir));
  a.push_back("--served-model-name=" + m.ServedName());
  const bool mistral = m.tokenizer_mode == "mistral";
  a.push_back(std::string("--load_format=") + (mistral ? "mistral" : "auto"));
  a.push_back(std::string("--config_format=") + (mistral ? "mistral" : "auto"));
  a.push_back("--tokenizer_mode=" + (m.tokenizer_mode.empty() ? std::string("auto") : m.tokenizer_mode));
  a.push_back("--dtype=" + m.dtype);
  a.push_back("--trust-remote-code");
  if (!m.tool_call_parser.empty()) {
    a.push_back("--tool-call-parser=" + m.tool_call_parser);
    a.push_back("--enable-auto-tool-choice");
  }
  if (!m.reasoning_parser.empty()) a.push_back("--reasoning-parser=" + m.reasoning_parser);
  if (!m.chat_template.empty()) a.push_back("--chat-template=/workspace/chat_templates/" + m.chat_template);
  a.push_back("--max-model-len=auto");
  a.push_back(gpu.gpu_model == "A10" ? "--gpu-memory-utilization=0.82" : "--gpu-memory-utilization=0.84");
  a.push_back("--kv-events-config={\"enable_kv_cache_events\":true}");
  a.push_back("--compilation-config.pass_config.fuse_allreduce_rms=False");
  a.push_back(absl::StrCat("--kaito-config-file=", kConfigDir, "/inference_config.yaml"));
  auto it = ws.metadata().annotations().find("kaito.sh/performance-mode");
  a.push_back("--performance-mode=" +
              (it == ws.metadata().annotations().end() ? std::string("balanced") : it->second));
  if (has_adapters) {
    a.push_back("--enable-lora");
    a.push_back(absl::StrCat("--kaito-adapters-dir=", kAdapterDir));
  }
  // Parallelism: small models replicate over a node's GPUs; others shard.
  const bool data_parallel = nodes == 1 && gpu.gpu_count > 1 && m.weights_bytes * 2 < gpu.PerGpuBytes();
  if (data_parallel) {
    a.push_back(absl::StrCat("--data-parallel-size=", gpu.gpu_count));
    a.push_back("--tensor-parallel-size=1");
  } else {
    a.push_back(absl::StrCat("--tensor-parallel-size=", gpu.gpu_count));
  }
  if (nodes > 1) {
    a.push_back(absl::StrCat("--pipeline-parallel-size=", nodes));
    a.push_back("--distributed-executor-backend=ray");
  }
  if (data_parallel || nodes > 1 || gpu.mig || IsHybridKvArchitecture(m) ||
      absl::StrContains(m.architecture, "GptOss")) {
    a.push_back("--kaito-kv-cache-cpu-memory-utilization=0");
  }
  return a;
}

std::vector<std::string> TransformersArgs(const ModelPreset& m) {
  std::vector<std::string> a = {"accelerate", "launch", "--num_processes=1", "--num_machines=1",
                                "--machine_rank=0", "--gpu_ids=all",
                                "/workspace/tfs/inference_api.py", "--pipeline=text-generation",
                                "--torch_dtype=" + m.dtype};
  if (!m.chat_template.empty()) a.push_back("--chat_template=/workspace/chat_templates/" + m.chat_template);
  a.push_back("--pretrained_model_name_or_path=" + (m.download_at_runtime ? m.id : std::string(kWeightsDir)));
  if (m.download_at_runtime) a.push_back("--allow_remote_files");
  a.push_back("--served_model_name=" + m.ServedName());
  return a;
}

std::string ShellQuote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:,@%+") ==
                        std::string::npos) {
    return s;
  }
  return "'" + absl::StrReplaceAll(s, {{"'", "'\\''"}}) + "'";
}

std::string Join(const std::vector<std::string>& args) {
  std::vector<std::string> quoted;
  for (const auto& a : args) quoted.push_back(ShellQuote(a));
  return absl::StrJoin(quoted, " ");
}

// Pulls an OCI image and copies its /data into `target_dir` (on `volume`, mounted at
// `mount_path`) before the main container starts: adapters and tuning input.
v1::ContainerSpec Puller(const RenderOptions& o, const std::string& name, const std::string& image,
                         const std::string& volume, const std::string& mount_path,
                         const std::string& target_dir,
                         const google::protobuf::RepeatedPtrField<std::string>& pull_secrets) {
  v1::ContainerSpec c;
  c.set_name(name);
  c.set_image(o.skopeo_image);
  c.add_command("sh");
  c.add_command("-c");
  c.add_command(absl::StrCat(
      "set -e; mkdir -p /tmp/image-root ", target_dir, "; skopeo copy --retry-times 3 docker://",
      ShellQuote(image), " oci:/tmp/image:latest; for layer in /tmp/image/blobs/sha256/*; do tar -xf ",
      "\"$layer\" -C /tmp/image-root 2>/dev/null || true; done; cp -r /tmp/image-root/data/. ",
      target_dir, "/"));
  AddMount(c, volume, mount_path);
  for (const auto& s : pull_secrets) c.add_image_pull_secrets(s);
  return c;
}

// A workload of `ws` on node `index`.
v1::WorkloadSpec NewWorkload(const v1::Workspace& ws, int index, const std::string& role,
                             const std::string& restart_policy) {
  v1::WorkloadSpec w;
  w.set_name(absl::StrCat(ws.metadata().name(), "-", index));
  w.set_workspace(ws.metadata().name());
  w.set_namespace_(ws.metadata().namespace_());
  w.set_index(index);
  w.set_role(role);
  w.set_restart_policy(restart_policy);
  return w;
}

// Pulls a model's weights image (ORAS) into the weights volume.
v1::ContainerSpec WeightsDownloader(const RenderOptions& o, const ModelPreset& m) {
  v1::ContainerSpec c;
  c.set_name("model-weights-downloader");
  c.set_image(o.oras_image);
  for (const std::string& part :
       {std::string("oras"), std::string("pull"),
        o.registry + "/kaito-" + m.name + ":" + (m.tag.empty() ? o.base_tag : m.tag),
        std::string("-o"), std::string(kWeightsDir)}) {
    c.add_command(part);
  }
  AddMount(c, "model-weights-volume", kWeightsDir);
  return c;
}

void AddCommonInferenceVolumes(v1::WorkloadSpec& w, v1::ContainerSpec& main, const v1::Workspace& ws,
                               const ModelPreset& model, bool nvme) {
  AddVolume(w, "dshm")->set_empty_dir_medium("Memory");
  AddMount(main, "dshm", "/dev/shm");
  auto* weights = AddVolume(w, "model-weights-volume");
  if (nvme) {
    weights->set_nvme_bytes(model.disk_bytes);
  } else {
    weights->set_empty_dir_medium("");
  }
  AddMount(main, "model-weights-volume", kWeightsDir);
  const std::string config =
      ws.inference().config().empty() ? kDefaultInferenceConfig : ws.inference().config();
  AddVolume(w, "config-volume")->set_config_map(config);
  AddMount(main, "config-volume", kConfigDir, /*read_only=*/true);
}

void AddAdapters(const RenderOptions& o, v1::WorkloadSpec& w, v1::ContainerSpec& main,
                 const v1::InferenceSpec& inf) {
  if (inf.adapters().empty()) return;
  AddVolume(w, "adapter-volume")->set_empty_dir_medium("");
  AddMount(main, "adapter-volume", kAdapterDir);
  for (const auto& a : inf.adapters()) {
    const std::string dir = absl::StrCat(kAdapterDir, "/", a.source().name());
    if (!a.source().image().empty()) {
      *w.add_init_containers() = Puller(o, "puller-" + a.source().name(), a.source().image(),
                                        "adapter-volume", kAdapterDir, dir,
                                        a.source().image_pull_secrets());
    } else if (a.source().has_volume_source()) {
      const std::string volume = "adapter-" + a.source().name();
      AddVolume(w, volume)->set_volume_source_json(StructJson(a.source().volume_source()));
      AddMount(main, volume, dir, /*read_only=*/true);
    }
    if (a.has_strength()) AddEnv(main, a.source().name(), a.strength());
  }
}

// A Kubernetes probe of a template (httpGet or exec, with its timings) as the agent runs it.
void TemplateProbe(const google::protobuf::Struct& probe, v1::Probe* out) {
  const auto& f = probe.fields();
  auto number = [&](const char* key) {
    auto it = f.find(key);
    return it == f.end() ? 0 : static_cast<int>(it->second.number_value());
  };
  if (auto http = f.find("httpGet"); http != f.end()) {
    const auto& hf = http->second.struct_value().fields();
    auto path = hf.find("path");
    out->set_http_path(path == hf.end() || path->second.string_value().empty()
                           ? "/"
                           : path->second.string_value());
    // A named port is not resolved: only numbers reach the agent.
    auto port = hf.find("port");
    if (port != hf.end()) out->set_port(static_cast<int>(port->second.number_value()));
  } else if (auto exec = f.find("exec"); exec != f.end()) {
    auto command = exec->second.struct_value().fields().find("command");
    if (command != exec->second.struct_value().fields().end()) {
      for (const auto& v : command->second.list_value().values()) out->add_exec(v.string_value());
    }
  }
  out->set_initial_delay_seconds(number("initialDelaySeconds"));
  out->set_period_seconds(number("periodSeconds"));
  out->set_timeout_seconds(number("timeoutSeconds"));
  out->set_failure_threshold(number("failureThreshold"));
}

absl::StatusOr<std::vector<v1::WorkloadSpec>> RenderTemplate(const RenderInput& in) {
  const v1::Workspace& ws = *in.workspace;
  const auto& tmpl = ws.inference().template_();
  std::vector<v1::WorkloadSpec> out;
  for (int i = 0; i < std::max(1, in.nodes); ++i) {
    v1::WorkloadSpec w = NewWorkload(ws, i, "template", "Always");
    auto spec = tmpl.fields().find("spec");
    if (spec == tmpl.fields().end()) return absl::InvalidArgumentError("inference.template: no spec");
    auto containers = spec->second.struct_value().fields().find("containers");
    if (containers == spec->second.struct_value().fields().end()) {
      return absl::InvalidArgumentError("inference.template.spec: no containers");
    }
    for (const auto& value : containers->second.list_value().values()) {
      const auto& f = value.struct_value().fields();
      v1::ContainerSpec c;
      auto str = [&](const char* key) {
        auto it = f.find(key);
        return it == f.end() ? std::string() : it->second.string_value();
      };
      c.set_name(str("name"));
      c.set_image(str("image"));
      for (const char* key : {"command", "args"}) {
        auto it = f.find(key);
        if (it == f.end()) continue;
        for (const auto& v : it->second.list_value().values()) {
          (std::string(key) == "command" ? c.add_command() : c.add_args())->assign(v.string_value());
        }
      }
      if (auto it = f.find("ports"); it != f.end()) {
        for (const auto& p : it->second.list_value().values()) {
          const auto& pf = p.struct_value().fields();
          auto port = pf.find("containerPort");
          auto name = pf.find("name");
          AddPort(c, name == pf.end() ? "" : name->second.string_value(),
                  port == pf.end() ? 0 : static_cast<int>(port->second.number_value()));
        }
      }
      if (auto it = f.find("env"); it != f.end()) {
        for (const auto& e : it->second.list_value().values()) {
          const auto& ef = e.struct_value().fields();
          auto name = ef.find("name");
          auto value = ef.find("value");
          AddEnv(c, name == ef.end() ? "" : name->second.string_value(),
                 value == ef.end() ? "" : value->second.string_value());
        }
      }
      if (auto it = f.find("resources"); it != f.end()) {
        const auto& rf = it->second.struct_value().fields();
        for (const char* kind : {"limits", "requests"}) {
          auto lim = rf.find(kind);
          if (lim == rf.end()) continue;
          auto gpus = lim->second.struct_value().fields().find("nvidia.com/gpu");
          if (gpus != lim->second.struct_value().fields().end()) {
            const auto& v = gpus->second;
            int n = v.has_number_value() ? static_cast<int>(v.number_value())
                                         : std::atoi(v.string_value().c_str());
            c.set_gpus(std::max(c.gpus(), n));
          }
        }
      }
      if (auto it = f.find("readinessProbe"); it != f.end() && it->second.has_struct_value()) {
        TemplateProbe(it->second.struct_value(), c.mutable_readiness_probe());
      }
      if (auto it = f.find("volumeMounts"); it != f.end()) {
        for (const auto& m : it->second.list_value().values()) {
          const auto& mf = m.struct_value().fields();
          auto field = [&](const char* key) {
            auto found = mf.find(key);
            return found == mf.end() ? google::protobuf::Value() : found->second;
          };
          AddMount(c, field("name").string_value(), field("mountPath").string_value(),
                   field("readOnly").bool_value());
        }
      }
      w.set_gpus(w.gpus() + c.gpus());
      *w.add_containers() = std::move(c);
    }
    if (auto grace = spec->second.struct_value().fields().find("terminationGracePeriodSeconds");
        grace != spec->second.struct_value().fields().end() && grace->second.has_number_value()) {
      w.set_termination_grace_period_seconds(static_cast<int>(grace->second.number_value()));
    }
    if (auto volumes = spec->second.struct_value().fields().find("volumes");
        volumes != spec->second.struct_value().fields().end()) {
      for (const auto& v : volumes->second.list_value().values()) {
        const auto& vf = v.struct_value().fields();
        auto name = vf.find("name");
        if (name == vf.end()) continue;
        v1::Volume* volume = AddVolume(w, name->second.string_value());
        if (auto empty = vf.find("emptyDir"); empty != vf.end()) {
          auto medium = empty->second.struct_value().fields().find("medium");
          volume->set_empty_dir_medium(
              medium == empty->second.struct_value().fields().end() ? ""
                                                                    : medium->second.string_value());
        } else if (auto cm = vf.find("configMap"); cm != vf.end()) {
          auto cm_name = cm->second.struct_value().fields().find("name");
          volume->set_config_map(
              cm_name == cm->second.struct_value().fields().end() ? "" : cm_name->second.string_value());
        } else if (auto secret = vf.find("secret"); secret != vf.end()) {
          auto secret_name = secret->second.struct_value().fields().find("secretName");
          volume->set_secret(secret_name == secret->second.struct_value().fields().end()
                                 ? ""
                                 : secret_name->second.string_value());
        } else {
          // Any other Kubernetes source, passed through as the workspace gave it.
          google::protobuf::Struct rest = v.struct_value();
          rest.mutable_fields()->erase("name");
          volume->set_volume_source_json(StructJson(rest));
        }
      }
    }
    out.push_back(std::move(w));
  }
  return out;
}

absl::StatusOr<std::vector<v1::WorkloadSpec>> RenderInference(const RenderOptions& o,
                                                              const RenderInput& in) {
  const v1::Workspace& ws = *in.workspace;
  const ModelPreset& m = *in.model;
  const auto& inf = ws.inference();
  const bool vllm = in.runtime == "vllm";
  const int nodes = vllm ? std::max(1, in.nodes) : 1;
  const bool multi_node = vllm && nodes > 1;
  std::vector<v1::WorkloadSpec> out;
  for (int i = 0; i < nodes; ++i) {
    v1::WorkloadSpec w =
        NewWorkload(ws, i, multi_node ? (i == 0 ? "leader" : "worker") : "inference", "Always");
    w.set_gpus(in.gpu.gpu_count);
    v1::ContainerSpec main;
    main.set_name(ws.metadata().name());
    main.set_image(BaseImage(o));
    main.set_gpus(in.gpu.gpu_count);
    std::string command;
    if (vllm) {
      const std::string serve = Join(VllmArgs(ws, m, in.gpu, nodes, !inf.adapters().empty()));
      if (!multi_node) {
        command = serve;
      } else if (i == 0) {
        command = absl::StrCat("/workspace/vllm/multi-node-serving.sh leader --ray_cluster_size=", nodes,
                               " --ray_port=", kRayPort, " && ", serve);
      } else {
        // The agent sets KAITO_LEADER_ADDRESS to the leader node's address.
        command = absl::StrCat("/workspace/vllm/multi-node-serving.sh worker --ray_address=${KAITO_LEADER_ADDRESS} --ray_port=",
                               kRayPort);
      }
    } else {
      command = Join(TransformersArgs(m));
    }
    main.add_command("/bin/sh");
    main.add_command("-c");
    main.add_command(command);
    AddPort(main, "http", kHttpPort);
    if (vllm) AddPort(main, "kv-events", kKvEventsPort);
    if (multi_node) {
      AddPort(main, "ray", kRayPort);
      AddPort(main, "dashboard", kRayDashboardPort);
    }
    if (vllm) AddEnv(main, "VLLM_USE_FLASHINFER_SAMPLER", "0");
    if (multi_node) {
      AddEnv(main, "POD_INDEX", std::to_string(i));
      if (i > 0) AddEnv(main, "KAITO_LEADER_ADDRESS", "");
    }
    const std::string& secret = inf.preset().preset_options().model_access_secret();
    if (!secret.empty()) {
      auto* e = main.add_env();
      e->set_name("HF_TOKEN");
      e->mutable_secret_key_ref()->set_name(secret);
      e->mutable_secret_key_ref()->set_key("HF_TOKEN");
      e->mutable_secret_key_ref()->set_optional(!m.gated);
    }
    if (!multi_node || i == 0) AddHealthProbes(main, m);
    AddCommonInferenceVolumes(w, main, ws, m, in.nvme);
    if (!m.download_at_runtime) *w.add_init_containers() = WeightsDownloader(o, m);
    AddAdapters(o, w, main, inf);
    w.mutable_containers()->Add(std::move(main));
    out.push_back(std::move(w));
  }
  return out;
}

absl::StatusOr<std::vector<v1::WorkloadSpec>> RenderTuning(const RenderOptions& o,
                                                           const RenderInput& in) {
  const v1::Workspace& ws = *in.workspace;
  const ModelPreset& m = *in.model;
  const auto& t = ws.tuning();
  const std::string method = absl::AsciiStrToLower(t.method());
  v1::WorkloadSpec w = NewWorkload(ws, 0, "tuning", "Never");
  w.set_gpus(in.gpu.gpu_count);
  v1::ContainerSpec main;
  main.set_name(ws.metadata().name());
  main.set_image(BaseImage(o));
  main.set_gpus(in.gpu.gpu_count);
  main.add_command("/bin/sh");
  main.add_command("-c");
  main.add_command(absl::StrCat(
      "cd /workspace/tfs/ && python3 metrics_server.py & accelerate launch --num_processes=",
      std::max(1, in.gpu.gpu_count), " /workspace/tfs/fine_tuning.py"));
  AddPort(main, "http", kHttpPort);
  AddEnv(main, "PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True");
  if (absl::StartsWith(m.name, "phi-3")) {
    AddEnv(main, "DEFAULT_TARGET_MODULES", "k_proj,q_proj,v_proj,o_proj,gate_proj,down_proj,up_proj");
  }
  AddVolume(w, "dshm")->set_empty_dir_medium("Memory");
  AddMount(main, "dshm", "/dev/shm");
  // Weights: downloaded by an init container into the weights volume.
  AddVolume(w, "model-weights-volume")->set_empty_dir_medium("");
  AddMount(main, "model-weights-volume", kWeightsDir);
  *w.add_init_containers() = WeightsDownloader(o, m);
  // Config: the user's ConfigMap or the built-in template of the method.
  AddVolume(w, "config-volume")
      ->set_config_map(t.config().empty() ? DefaultTrainingTemplate(method) : t.config());
  AddMount(main, "config-volume", kConfigDir, /*read_only=*/true);
  // Input data.
  const auto& input = t.input();
  if (input.has_volume_source()) {
    AddVolume(w, "data-volume")->set_volume_source_json(StructJson(input.volume_source()));
  } else {
    AddVolume(w, "data-volume")->set_empty_dir_medium("");
  }
  AddMount(main, "data-volume", kDataDir);
  if (!input.urls().empty()) {
    // The agent downloads them itself (no curl container): the SSRF guard again at the
    // connection, resumes, limits, progress in the status.
    std::set<std::string> names;
    for (const auto& url : input.urls()) {
      std::string base = url.substr(0, url.find_first_of("?#"));
      base = base.substr(base.rfind('/') + 1);
      if (base.empty() || base == "." || base == "..") base = "data";
      // Two URLs of one base name must not overwrite each other.
      std::string name = base;
      for (int n = 2; !names.insert(name).second; ++n) name = absl::StrCat(n, "-", base);
      v1::DataDownload* d = w.add_downloads();
      d->set_url(url);
      d->set_volume("data-volume");
      d->set_file_name(name);
    }
  } else if (!input.image().empty()) {
    *w.add_init_containers() =
        Puller(o, "data-puller", input.image(), "data-volume", kDataDir, kDataDir,
               input.image_pull_secrets());
  }
  // Output: a volume, or an image pushed by a sidecar once the job writes its sentinel.
  const auto& output = t.output();
  if (output.has_volume_source()) {
    AddVolume(w, "results-volume")->set_volume_source_json(StructJson(output.volume_source()));
  } else {
    AddVolume(w, "results-volume")->set_empty_dir_medium("");
  }
  AddMount(main, "results-volume", kResultsDir);
  if (!output.image().empty()) {
    // The agent pushes the adapter itself once the job exited 0 having written Kaito's
    // completion marker: one layer per file, as `oras push` of those files makes them.
    v1::ArtifactPush* push = w.mutable_push();
    push->set_image(output.image());
    push->set_volume("results-volume");
    push->add_files("adapter_config.json");
    push->add_files("adapter_model.safetensors");
    push->set_completion_marker("fine_tuning_completed.txt");
    (*push->mutable_annotations())["sh.kaito.model.name"] = m.name;
    push->set_secret(output.image_push_secret());
  }
  *w.add_containers() = std::move(main);
  return std::vector<v1::WorkloadSpec>{std::move(w)};
}

}  // namespace

absl::StatusOr<std::vector<v1::WorkloadSpec>> RenderWorkloads(const RenderOptions& options,
                                                              const RenderInput& in) {
  if (in.workspace == nullptr) return absl::InvalidArgumentError("no workspace");
  const v1::Workspace& ws = *in.workspace;
  if (ws.has_inference() && ws.inference().has_template_()) return RenderTemplate(in);
  if (in.model == nullptr) return absl::InvalidArgumentError("no preset to render");
  if (in.gpu.gpu_count <= 0) return absl::InvalidArgumentError("no GPUs on the target node");
  if (ws.has_tuning()) return RenderTuning(options, in);
  return RenderInference(options, in);
}

std::string CommandLine(const v1::ContainerSpec& c) {
  if (c.command_size() == 3 && (c.command(0) == "/bin/sh" || c.command(0) == "sh") &&
      c.command(1) == "-c") {
    return c.command(2);
  }
  std::vector<std::string> all(c.command().begin(), c.command().end());
  all.insert(all.end(), c.args().begin(), c.args().end());
  return Join(all);
}

}  // namespace kaito::presets
