#include "presets/workspace_validator.h"

#include "presets/offerings.h"

#include <arpa/inet.h>
#include <google/protobuf/util/message_differencer.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/image_reference.h"
#include "common/k8s_names.h"
#include "common/url_guard.h"
#include "presets/tuning_defaults.h"

namespace kaito::presets {
namespace {

using google::protobuf::util::MessageDifferencer;

constexpr int kMaxAdapters = 10;

// Keys Kaito strips from user matchLabels (SanitizedMatchLabels).
const std::set<std::string>& ReservedLabelKeys() {
  static const auto* keys = new std::set<std::string>{
      "kaito.sh/workspace",          "kaito.sh/workspacenamespace",
      "kaito.sh/ragengine",          "kaito.sh/ragenginenamespace",
      "karpenter.kaito.sh/workspace-name", "karpenter.kaito.sh/workspace-namespace",
      "karpenter.kaito.sh/inferenceset",   "karpenter.kaito.sh/inferenceset-namespace"};
  return *keys;
}

bool IsV1alpha1(const v1::Workspace& ws) { return ws.api_version() == "kaito.sh/v1alpha1"; }

const std::string* Annotation(const v1::Workspace& ws, const std::string& key) {
  auto it = ws.metadata().annotations().find(key);
  return it == ws.metadata().annotations().end() ? nullptr : &it->second;
}

std::string AnnotationPath(const std::string& key) {
  return "metadata.annotations[" + key + "]";
}

std::string Gi(int64_t bytes) { return FormatGi(bytes); }

bool HasDataSource(const v1::DataSource& s) {
  return !s.name().empty() || !s.urls().empty() || s.has_volume_source() || !s.image().empty() ||
         !s.image_pull_secrets().empty();
}

bool HasDestination(const v1::DataDestination& d) {
  return d.has_volume_source() || !d.image().empty() || !d.image_push_secret().empty();
}

// Azure lets Kaito's webhook pass unknown names that look like GPU sizes.
bool IsAzureEscape(const std::string& sku) {
  const std::string lower = absl::AsciiStrToLower(sku);
  return absl::StartsWith(lower, "standard_n") || absl::StartsWith(lower, "standard_d");
}

std::optional<int64_t> LabelInt(const v1::Node& node, const std::string& key) {
  auto it = node.metadata().labels().find(key);
  int64_t v = 0;
  if (it == node.metadata().labels().end() || !absl::SimpleAtoi(it->second, &v) || v <= 0) {
    return std::nullopt;
  }
  return v;
}

}  // namespace

bool AutoProvisioned(const v1::Workspace& ws, const ValidationOptions& options) {
  return IsV1alpha1(ws) || options.node_auto_provisioning;
}

std::string EffectiveInstanceType(const v1::Workspace& ws) {
  if (IsV1alpha1(ws) && ws.resource().instance_type().empty()) return kV1alpha1DefaultInstanceType;
  return ws.resource().instance_type();
}

bool WorkspaceSpecEqual(const v1::Workspace& a, const v1::Workspace& b) {
  return a.has_inference() == b.has_inference() && a.has_tuning() == b.has_tuning() &&
         MessageDifferencer::Equals(a.resource(), b.resource()) &&
         MessageDifferencer::Equals(a.inference(), b.inference()) &&
         MessageDifferencer::Equals(a.tuning(), b.tuning());
}

std::string WorkspaceRuntime(const v1::Workspace& ws, const ValidationOptions& options) {
  return ws.has_tuning() ? "transformers" : RuntimeOf(ws, options);
}

absl::StatusOr<int64_t> InferenceMaxModelLen(const v1::Workspace& ws, ValidationContext& context) {
  if (ws.has_tuning() || ws.inference().config().empty()) return 0;
  auto cm = context.GetConfigMap(ws.metadata().namespace_(), ws.inference().config());
  if (!cm) return 0;
  auto it = cm->data().find("inference_config.yaml");
  if (it == cm->data().end()) return 0;
  return MaxModelLenOf(it->second);
}

std::string RuntimeOf(const v1::Workspace& ws, const ValidationOptions& options) {
  auto it = ws.metadata().annotations().find(kAnnotationRuntime);
  if (it != ws.metadata().annotations().end() && !it->second.empty()) {
    return absl::AsciiStrToLower(it->second);
  }
  return options.vllm_default ? "vllm" : "transformers";
}

absl::StatusOr<int64_t> MaxModelLenOf(const std::string& yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError("inference_config.yaml is not valid YAML: " + e.msg);
  }
  if (!root.IsMap()) return 0;
  YAML::Node vllm = root["vllm"];
  if (!vllm.IsDefined() || !vllm.IsMap()) return 0;
  YAML::Node len = vllm["max-model-len"];
  if (!len.IsDefined() || len.IsNull()) return 0;
  int64_t value = 0;
  if (!len.IsScalar() || !absl::SimpleAtoi(len.Scalar(), &value) || value <= 0) {
    return absl::InvalidArgumentError("vllm.max-model-len must be a positive integer, got \"" +
                                      (len.IsScalar() ? len.Scalar() : std::string("?")) + "\"");
  }
  return value;
}

std::optional<GpuConfig> GpuConfigOfNode(const v1::Node& node) {
  auto product = node.metadata().labels().find("nvidia.com/gpu.product");
  auto count = LabelInt(node, "nvidia.com/gpu.count");
  auto memory_mib = LabelInt(node, "nvidia.com/gpu.memory");
  if (product == node.metadata().labels().end() || product->second.empty() || !count ||
      !memory_mib) {
    return std::nullopt;
  }
  GpuConfig g;
  g.source = node.metadata().name();
  g.gpu_model = product->second;
  g.gpu_count = static_cast<int>(*count);
  // Labels give MiB per GPU; Kaito rounds to whole GiB.
  const int64_t per_gpu_gib = static_cast<int64_t>(std::llround(static_cast<double>(*memory_mib) / 1024.0));
  g.gpu_memory_bytes = per_gpu_gib * kGiB * g.gpu_count;
  auto major = LabelInt(node, "nvidia.com/cuda.compute.major");
  auto minor_it = node.metadata().labels().find("nvidia.com/cuda.compute.minor");
  int64_t minor = 0;
  if (major && minor_it != node.metadata().labels().end() &&
      absl::SimpleAtoi(minor_it->second, &minor)) {
    g.compute_capability = static_cast<int>(*major * 10 + minor);
  }
  return g;
}

std::vector<std::string> CheckTrainingConfig(const std::string& yaml, const std::string& method) {
  std::vector<std::string> problems;
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return {"training_config.yaml is not valid YAML: " + e.msg};
  }
  YAML::Node config = root.IsMap() ? root["training_config"] : YAML::Node();
  if (!config.IsDefined() || !config.IsMap()) {
    return {"training_config: must be a map"};
  }
  static const std::set<std::string> kSections = {"ModelConfig",       "QuantizationConfig",
                                                  "LoraConfig",        "TrainingArguments",
                                                  "DatasetConfig",     "DataCollator"};
  for (auto it = config.begin(); it != config.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar() || !kSections.contains(key.Scalar())) {
      problems.push_back("training_config: Unrecognized section " +
                         (key.IsScalar() ? key.Scalar() : std::string("?")));
    }
  }
  // Quantization: nil or bool; not both; lora => neither; qlora => one.
  auto flag = [&](const char* name) -> std::optional<bool> {
    YAML::Node q = config["QuantizationConfig"];
    if (!q.IsDefined() || !q.IsMap()) return std::nullopt;
    YAML::Node v = q[name];
    if (!v.IsDefined() || v.IsNull()) return std::nullopt;
    if (v.IsScalar() && (v.Scalar() == "true" || v.Scalar() == "false")) return v.Scalar() == "true";
    problems.push_back(std::string("training_config.QuantizationConfig.") + name +
                       ": must be a boolean");
    return std::nullopt;
  };
  const bool in4 = flag("load_in_4bit").value_or(false);
  const bool in8 = flag("load_in_8bit").value_or(false);
  if (in4 && in8) {
    problems.push_back(
        "training_config.QuantizationConfig: load_in_4bit and load_in_8bit cannot both be true");
  }
  if (method == "lora" && (in4 || in8)) {
    problems.push_back(
        "training_config.QuantizationConfig: LoRA tuning must not quantize the model "
        "(load_in_4bit/load_in_8bit must be false); use method qlora");
  }
  if (method == "qlora" && !in4 && !in8) {
    problems.push_back(
        "training_config.QuantizationConfig: QLoRA tuning needs load_in_4bit or load_in_8bit");
  }
  YAML::Node args = config["TrainingArguments"];
  if (args.IsDefined() && args.IsMap() && args["output_dir"].IsDefined()) {
    YAML::Node dir = args["output_dir"];
    if (!dir.IsScalar()) {
      problems.push_back("training_config.TrainingArguments.output_dir: must be a string");
    } else {
      // Resolve "." and ".." lexically, as filepath.Clean does.
      std::vector<std::string> parts;
      size_t start = 0;
      const std::string& path = dir.Scalar();
      bool absolute = !path.empty() && path[0] == '/';
      while (start <= path.size()) {
        size_t slash = path.find('/', start);
        std::string part = path.substr(start, slash == std::string::npos ? slash : slash - start);
        if (part == "..") {
          if (!parts.empty()) parts.pop_back();
        } else if (!part.empty() && part != ".") {
          parts.push_back(part);
        }
        if (slash == std::string::npos) break;
        start = slash + 1;
      }
      if (!absolute || parts.size() < 2 || parts[0] != "mnt") {
        problems.push_back("training_config.TrainingArguments.output_dir: \"" + path +
                           "\" must be a directory under /mnt (and not /mnt itself)");
      }
    }
  }
  return problems;
}

void WorkspaceValidator::Validate(const v1::Workspace& ws, const v1::Workspace* old,
                                  ValidationContext& ctx, FieldErrors& errors,
                                  std::vector<std::string>& warnings) const {
  if (old != nullptr) {
    ValidateUpdate(ws, *old, errors);
    // An update that leaves the spec alone (labels, annotations, finalizers: what a
    // controller writes while deleting) is never blocked by the world having changed
    // since creation (nodes gone, a ConfigMap deleted, a SKU retired).
    if (WorkspaceSpecEqual(ws, *old)) {
      ValidateAnnotations(ws, errors);
      return;
    }
  }
  // A new spec must pass every create rule, so that an update cannot leave behind an
  // object that would not be accepted as new.
  ValidateCreate(ws, ctx, errors, warnings);
}

void WorkspaceValidator::ValidateAnnotations(const v1::Workspace& ws, FieldErrors& errors) const {
  ValidateOfferingAnnotations(*catalog_, options_, ws, errors);
  if (const std::string* v = Annotation(ws, kAnnotationNodeImageFamily)) {
    if (*v != "ubuntu" && *v != "azurelinux") {
      errors.Add(AnnotationPath(kAnnotationNodeImageFamily),
                 "unsupported node image family \"" + *v + "\": supported values: ubuntu, azurelinux");
    }
  }
  if (const std::string* v = Annotation(ws, kAnnotationPerformanceMode)) {
    if (*v != "balanced" && *v != "interactivity" && *v != "throughput") {
      errors.Add(AnnotationPath(kAnnotationPerformanceMode),
                 "Unsupported value: \"" + *v +
                     "\": supported values: \"balanced\", \"interactivity\", \"throughput\"");
    }
  }
  if (const std::string* v = Annotation(ws, kAnnotationUseLocalWeights)) {
    if (*v != "true" && *v != "false") {
      errors.Add(AnnotationPath(kAnnotationUseLocalWeights),
                 "Unsupported value: \"" + *v + "\": supported values: \"true\", \"false\"");
    }
  }
  if (const std::string* v = Annotation(ws, kAnnotationRuntime)) {
    const std::string r = absl::AsciiStrToLower(*v);
    if (r != "vllm" && r != "transformers") {
      errors.Add(AnnotationPath(kAnnotationRuntime),
                 "Unsupported value: \"" + *v + "\": supported values: \"vllm\", \"transformers\"");
    }
  }
}

void WorkspaceValidator::ValidateCreate(const v1::Workspace& ws, ValidationContext& ctx,
                                        FieldErrors& errors,
                                        std::vector<std::string>& warnings) const {
  const bool has_inference = ws.has_inference();
  const bool has_tuning = ws.has_tuning();
  if (!has_inference && !has_tuning) {
    errors.Add("", "Either Inference or Tuning must be specified, not neither");
    return;
  }
  if (has_inference && has_tuning) {
    errors.Add("", "Either Inference or Tuning must be specified, but not both");
    return;
  }
  ValidateAnnotations(ws, errors);
  ValidateReferences(ws, errors);
  if (IsV1alpha1(ws) && ws.resource().has_partition()) {
    errors.Add("resource.partition", "Forbidden: partition is not part of kaito.sh/v1alpha1");
  }
  if (has_inference) {
    ValidateInference(ws, ctx, errors, warnings);
  } else {
    ValidateTuning(ws, ctx, errors, warnings);
  }
}

void WorkspaceValidator::ValidateReferences(const v1::Workspace& ws, FieldErrors& errors) const {
  // Every Secret and ConfigMap a workspace names is an object name in its own namespace:
  // a DNS subdomain, so never a path ("/", ".."), a NUL or more than 253 characters.
  auto check = [&](const std::string& path, const std::string& name) {
    if (name.empty()) return;  // Absent; whether it is required is checked elsewhere.
    if (std::string e = CheckDnsSubdomain(name); !e.empty()) {
      errors.Add(path, e + " (the name of an object in the workspace's namespace)");
    }
  };
  auto check_list = [&](const std::string& path,
                        const google::protobuf::RepeatedPtrField<std::string>& names) {
    for (int i = 0; i < names.size(); ++i) check(absl::StrCat(path, "[", i, "]"), names[i]);
  };
  auto check_preset = [&](const std::string& path, const v1::PresetSpec& preset) {
    check(path + ".presetOptions.modelAccessSecret", preset.preset_options().model_access_secret());
    check_list(path + ".presetOptions.imagePullSecrets", preset.preset_options().image_pull_secrets());
  };
  if (ws.has_inference()) {
    const v1::InferenceSpec& inf = ws.inference();
    check_preset("inference.preset", inf.preset());
    check("inference.config", inf.config());
    for (int i = 0; i < inf.adapters_size(); ++i) {
      check_list(absl::StrCat("inference.adapters[", i, "].source.imagePullSecrets"),
                 inf.adapters(i).source().image_pull_secrets());
    }
  }
  if (ws.has_tuning()) {
    const v1::TuningSpec& tuning = ws.tuning();
    check_preset("tuning.preset", tuning.preset());
    check("tuning.config", tuning.config());
    check_list("tuning.input.imagePullSecrets", tuning.input().image_pull_secrets());
    check("tuning.output.imagePushSecret", tuning.output().image_push_secret());
  }
}

void WorkspaceValidator::ValidateAdapters(const v1::InferenceSpec& inference,
                                          FieldErrors& errors) const {
  if (inference.adapters_size() > kMaxAdapters) {
    errors.Add("inference.adapters",
               absl::StrFormat("Too many: %d: maximum of %d allowed", inference.adapters_size(),
                               kMaxAdapters));
    return;  // Do not walk a hostile list.
  }
  std::set<std::string> names;
  for (int i = 0; i < inference.adapters_size(); ++i) {
    const auto& a = inference.adapters(i);
    const std::string p = absl::StrCat("inference.adapters[", i, "]");
    if (!a.has_source()) {
      errors.Add(p + ".source", "Required value: Source field is required");
      continue;
    }
    const auto& s = a.source();
    if (s.name().empty()) {
      errors.Add(p + ".source.name", "Required value: Name of Adapter field must be specified");
    } else if (std::string e = CheckDnsSubdomain(s.name()); !e.empty()) {
      errors.Add(p + ".source.name", e);
    } else if (!names.insert(s.name()).second) {
      errors.Add(p + ".source.name", "Duplicate adapter source name found: " + s.name());
    }
    if (!s.urls().empty()) {
      errors.Add(p + ".source.urls", "URLs are not supported as adapter source");
    }
    if (s.image().empty() && !s.has_volume_source()) {
      errors.Add(p + ".source", "Either Image or Volume must be specified for adapter source");
    }
    if (a.has_strength()) {
      double strength = 0;
      if (!absl::SimpleAtod(a.strength(), &strength) || !std::isfinite(strength) ||
          strength < 0 || strength > 1) {
        errors.Add(p + ".strength", "Invalid value: \"" + a.strength() +
                                        "\": must be a number between 0 and 1");
      }
    }
  }
}

void WorkspaceValidator::ValidateInference(const v1::Workspace& ws, ValidationContext& ctx,
                                           FieldErrors& errors,
                                           std::vector<std::string>& warnings) const {
  const v1::InferenceSpec& inf = ws.inference();
  const bool has_preset = inf.has_preset() && !inf.preset().name().empty();
  const bool has_template = inf.has_template_();
  if (!has_preset && !has_template) {
    errors.Add("inference", "Preset or Template must be specified");
  } else if (has_preset && has_template) {
    errors.Add("inference", "Preset and Template cannot be set at the same time");
  }
  ValidateAdapters(inf, errors);
  const std::string runtime = RuntimeOf(ws, options_);
  const ModelPreset* model = nullptr;
  if (has_preset && !has_template) {
    const std::string& name = inf.preset().name();
    model = catalog_->FindModel(name);
    if (model == nullptr) {
      errors.Add("inference.preset.name", "Unsupported inference preset name " + name);
    } else if (model->deprecated) {
      errors.Add("inference.preset.name",
                 "Model " + model->name + " is deprecated and no longer supported");
      model = nullptr;
    }
  }
  if (model != nullptr) {
    if (runtime == "transformers" && !model->transformers) {
      errors.Add(AnnotationPath(kAnnotationRuntime),
                 "Model " + model->name +
                     " does not support inference with Huggingface Transformers runtime");
    }
    if (runtime == "vllm" && !model->vllm) {
      errors.Add(AnnotationPath(kAnnotationRuntime),
                 "Model " + model->name + " does not support inference with vLLM runtime; set " +
                     kAnnotationRuntime + ": transformers");
    }
    if (runtime == "vllm" && model->vllm) {
      if (inf.adapters_size() > 0 && model->disallow_lora) {
        errors.Add("inference.adapters", "vLLM does not support LoRA adapters for " + model->name);
      }
      for (int i = 0; i < inf.adapters_size() && i < kMaxAdapters; ++i) {
        if (inf.adapters(i).has_strength()) {
          errors.Add(absl::StrCat("inference.adapters[", i, "].strength"),
                     "vLLM does not support adapter strength");
        }
      }
    }
    const std::string& secret = inf.preset().preset_options().model_access_secret();
    if (model->gated && secret.empty()) {
      errors.Add("inference.preset.presetOptions.modelAccessSecret",
                 "Model " + model->name +
                     " requires authentication and needs a modelAccessSecret with HF_TOKEN key");
    }
    if (!model->download_at_runtime && !secret.empty()) {
      errors.Add("inference.preset.presetOptions.modelAccessSecret",
                 "Model " + model->name + " does not require a modelAccessSecret");
    }
    if (IsV1alpha1(ws) && inf.preset().access_mode() == "private" &&
        inf.preset().preset_options().image().empty()) {
      errors.Add("inference.preset.presetOptions.image",
                 "Required value: a private preset needs an image");
    }
  }
  // The inference config (vLLM reads it).
  int64_t max_model_len = 0;
  if (!inf.config().empty() && runtime == "vllm") {
    auto cm = ctx.GetConfigMap(ws.metadata().namespace_(), inf.config());
    if (!cm) {
      errors.Add("inference.config", "ConfigMap '" + inf.config() +
                                         "' specified in 'config' not found in namespace '" +
                                         ws.metadata().namespace_() + "'");
    } else if (!cm->data().contains("inference_config.yaml")) {
      errors.Add("inference.config", "ConfigMap '" + inf.config() +
                                         "' does not contain 'inference_config.yaml'");
    } else {
      auto len = MaxModelLenOf(cm->data().at("inference_config.yaml"));
      if (!len.ok()) {
        errors.Add("inference.config", std::string(len.status().message()));
      } else {
        max_model_len = *len;
        if (model != nullptr && model->context_length > 0 && max_model_len > model->context_length) {
          errors.Add("inference.config",
                     absl::StrFormat("max-model-len %d exceeds model's maximum supported context "
                                     "window %d",
                                     max_model_len, model->context_length));
        }
      }
    }
  }
  ValidateResource(ws, model, /*tuning=*/false, ctx, errors, warnings);
}

void WorkspaceValidator::CheckComputeCapability(const ModelPreset& model, const GpuConfig& gpu,
                                                bool qlora,
                                                std::vector<std::string>& warnings) const {
  const bool needs_bf16 = model.dtype == "bfloat16" || qlora;
  if (!needs_bf16 || gpu.compute_capability == 0 || gpu.compute_capability >= 80) return;
  std::vector<std::string> suggestions;
  for (const Sku* s : catalog_->SkusOf(options_.cloud)) {
    if (!s->retired && s->ComputeCapability() >= 80 && s->gpu_count == 1 &&
        s->gpu_memory_bytes >= gpu.gpu_memory_bytes && suggestions.size() < 2) {
      suggestions.push_back(s->name);
    }
  }
  warnings.push_back(absl::StrFormat(
      "%s has %s GPUs (compute capability %d.%d), which cannot run bfloat16, the dtype %s uses%s; "
      "use GPUs of compute capability 8.0 or newer%s",
      gpu.source, gpu.gpu_model, gpu.compute_capability / 10, gpu.compute_capability % 10,
      model.name, qlora ? " (and QLoRA computes in)" : "",
      suggestions.empty() ? "" : ", e.g. " + absl::StrJoin(suggestions, " or ")));
}

void WorkspaceValidator::ValidateResource(const v1::Workspace& ws, const ModelPreset* model,
                                          bool tuning, ValidationContext& ctx,
                                          FieldErrors& errors,
                                          std::vector<std::string>& warnings) const {
  const v1::ResourceSpec& r = ws.resource();
  const bool v1alpha1 = IsV1alpha1(ws);
  const bool bypass = Annotation(ws, kAnnotationBypassResourceChecks) != nullptr;
  // The label selector: required; not only reserved keys.
  if (!r.has_label_selector()) {
    errors.Add("resource.labelSelector", "Required value");
  } else if (!r.label_selector().match_labels().empty()) {
    bool any = false;
    for (const auto& [k, v] : r.label_selector().match_labels()) {
      if (!ReservedLabelKeys().contains(k)) any = true;
    }
    if (!any) {
      errors.Add("resource.labelSelector.matchLabels",
                 "matchLabels must contain at least one non-reserved label");
    }
  }
  if (tuning) {
    if (r.has_count() && r.count() > 1) {
      errors.Add("resource.count",
                 "Tuning does not currently support multinode configurations. Please set the node "
                 "count to 1. Future versions may include support for multinode configurations.");
    }
    if (r.has_partition()) {
      errors.Add("resource.partition", "GPU partitioning is not supported for tuning workloads");
    }
  }
  const std::string runtime = WorkspaceRuntime(ws, options_);
  const bool nap = AutoProvisioned(ws, options_);
  const std::string instance_type = EffectiveInstanceType(ws);
  if (!v1alpha1) {
    if (nap && instance_type.empty()) {
      errors.Add("resource.instanceType",
                 "instanceType is required when node auto-provisioning is enabled");
    }
    if (!nap && !instance_type.empty()) {
      errors.Add("resource.instanceType",
                 "instanceType must be empty when node auto-provisioning is disabled (BYO "
                 "scenario)");
    }
  }
  // GPU configuration and node count the memory check uses.
  std::optional<GpuConfig> gpu;
  int machines = 1;
  if (nap) {
    if (r.has_partition()) {
      errors.Add("resource.partition", "GPU partitioning is only supported with BYO nodes");
    }
    if (instance_type.empty()) return;
    if (options_.cloud != "azure" && options_.cloud != "aws" && options_.cloud != "arc") {
      errors.Add("resource.instanceType", "Failed to get SKU handler for cloud provider " +
                                              options_.cloud);
      return;
    }
    const Sku* sku = catalog_->FindSku(options_.cloud, instance_type);
    if (sku == nullptr) {
      if (options_.cloud == "azure" && IsAzureEscape(instance_type)) {
        warnings.push_back("instance type " + instance_type +
                           " is not in the SKU catalog: GPU memory is not checked, and the "
                           "workspace cannot be sized until the catalog knows it");
        return;
      }
      std::vector<std::string> names;
      for (const Sku* s : catalog_->SkusOf(options_.cloud)) {
        if (!s->retired) names.push_back(s->name);
      }
      errors.Add("resource.instanceType", "Unsupported instance type " + instance_type +
                                              ". Supported SKUs: [" + absl::StrJoin(names, " ") +
                                              "]");
      return;
    }
    if (sku->retired) {
      warnings.push_back("instance type " + sku->name + " (" + std::to_string(sku->gpu_count) +
                         "x " + sku->gpu_model +
                         ") is retired by the cloud provider; new nodes may not be available");
    }
    gpu = GpuConfig::FromSku(*sku);
    machines = r.has_count() ? std::max(1, r.count()) : 1;
  } else {
    if (r.has_partition()) {
      ValidatePartition(ws, model, errors, warnings);
      return;
    }
    if (model == nullptr || !r.has_label_selector()) return;
    FieldErrors selector_errors;
    LabelSelectorMatcher selector =
        LabelSelectorMatcher::FromProto(r.label_selector(), "resource.labelSelector", selector_errors);
    if (!selector_errors.empty()) return;  // Reported by the structural checks.
    std::vector<v1::Node> nodes = ctx.NodesMatching(selector);
    if (nodes.empty()) {
      errors.Add("resource.labelSelector", "No nodes found matching the specified label selector");
      return;
    }
    for (const v1::Node& node : nodes) {
      auto g = GpuConfigOfNode(node);
      if (!g) {
        errors.Add("resource.labelSelector",
                   "Failed to get GPU config from nvidia labels of node " + node.metadata().name() +
                       " (nvidia.com/gpu.product, nvidia.com/gpu.count, nvidia.com/gpu.memory)");
        return;
      }
      if (gpu && (g->gpu_model != gpu->gpu_model || g->gpu_count != gpu->gpu_count ||
                  g->gpu_memory_bytes != gpu->gpu_memory_bytes)) {
        errors.Add("resource.labelSelector",
                   "Non-uniform GPU product/count/memory across the selected nodes: " +
                       gpu->source + " has " + std::to_string(gpu->gpu_count) + "x " +
                       gpu->gpu_model + ", " + g->source + " has " +
                       std::to_string(g->gpu_count) + "x " + g->gpu_model);
        return;
      }
      if (!gpu) gpu = g;
    }
    machines = static_cast<int>(nodes.size());
  }
  if (model == nullptr || !gpu) return;
  CheckComputeCapability(*model, *gpu,
                         tuning && absl::AsciiStrToLower(ws.tuning().method()) == "qlora", warnings);
  if (tuning) {
    // Kaito does not check tuning memory; a warning says what the job will need.
    if (model->tuning && gpu->gpu_memory_bytes * machines < model->tuning->model_bytes) {
      warnings.push_back("tuning " + model->name + " needs about " +
                         Gi(model->tuning->model_bytes) + " of GPU memory; " + gpu->source +
                         " has " + Gi(gpu->gpu_memory_bytes * machines));
    }
    return;
  }
  // Kaito's total-memory check; vLLM under auto-provisioning is sized by the estimator.
  const bool check_memory = v1alpha1 || !nap || runtime != "vllm";
  const int64_t required = model->weights_bytes;
  if (check_memory && required > 0) {
    const int64_t total = gpu->gpu_memory_bytes * machines;
    if (total < required) {
      const std::string msg = "Insufficient total GPU memory: Instance type " + gpu->source +
                              " has a total of " + Gi(total) + ", but preset " + model->name +
                              " requires at least " + Gi(required);
      if (bypass) {
        warnings.push_back(msg + " (allowed by " + kAnnotationBypassResourceChecks + ")");
      } else {
        errors.Add("resource.instanceType", msg);
      }
    }
  }
  if (runtime == "transformers" && model->distributed &&
      gpu->gpu_memory_bytes < model->weights_bytes) {
    const std::string msg =
        "Multi-node distributed inference is not supported with Huggingface Transformers runtime";
    if (bypass) {
      warnings.push_back(msg);
    } else {
      errors.Add(AnnotationPath(kAnnotationRuntime), msg);
    }
  }
}

void WorkspaceValidator::ValidatePartition(const v1::Workspace& ws, const ModelPreset* model,
                                           FieldErrors& errors,
                                           std::vector<std::string>& warnings) const {
  const v1::PartitionSpec& p = ws.resource().partition();
  if (p.mode() == "mig") {
    if (!options_.enable_mig) {
      errors.Add("resource.partition.mode", "MIG support is not enabled (feature gate enableMIG)");
    }
    if (p.has_count()) {
      errors.Add("resource.partition.count", "count is only valid for accelerator mode");
    }
    static const std::regex profile_re("^(\\d+)g\\.([\\d.]+)gb$");
    std::smatch m;
    if (p.profile().size() > 32) {
      errors.Add("resource.partition.profile", "Invalid value: a MIG profile looks like 1g.10gb");
      return;
    }
    double slice_gb = 0;
    int compute = 0;
    if (!std::regex_match(p.profile(), m, profile_re) || !absl::SimpleAtoi(m[1].str(), &compute) ||
        !absl::SimpleAtod(m[2].str(), &slice_gb) || compute <= 0 || slice_gb <= 0) {
      errors.Add("resource.partition.profile",
                 "Invalid value: \"" + p.profile() + "\": a MIG profile looks like 1g.10gb");
      return;
    }
    if (model != nullptr) {
      const int64_t slice = static_cast<int64_t>(std::floor(slice_gb)) * kGiB;
      if (slice < model->weights_bytes) {
        const std::string msg = "Model " + model->name + " requires at least " +
                                Gi(model->weights_bytes) + ", which exceeds the " + p.profile() +
                                " MIG slice capacity of " + Gi(slice);
        if (Annotation(ws, kAnnotationBypassResourceChecks) != nullptr) {
          warnings.push_back(msg);
        } else {
          errors.Add("resource.partition.profile", msg);
        }
      }
    }
  } else if (p.mode() == "accelerator") {
    if (!options_.enable_accelerator) {
      errors.Add("resource.partition.mode",
                 "accelerator partitioning is not enabled (feature gate enableAccelerator)");
    }
    if (!p.profile().empty()) {
      errors.Add("resource.partition.profile", "profile is not valid for accelerator mode");
    }
    if (!p.has_count()) {
      errors.Add("resource.partition.count", "Required value: count is required for accelerator mode");
    } else if (p.count() < 1) {
      errors.Add("resource.partition.count", "Invalid value: must be at least 1");
    }
  } else {
    errors.Add("resource.partition.mode",
               "unsupported partition mode \"" + p.mode() + "\": supported values: mig, accelerator");
  }
}

void WorkspaceValidator::ValidateTuning(const v1::Workspace& ws, ValidationContext& ctx,
                                        FieldErrors& errors,
                                        std::vector<std::string>& warnings) const {
  const v1::TuningSpec& t = ws.tuning();
  const std::string method = absl::AsciiStrToLower(t.method());
  if (method != "lora" && method != "qlora") {
    errors.Add("tuning.method", "Unsupported value: \"" + t.method() +
                                    "\": supported values: \"lora\", \"qlora\"");
  }
  const ModelPreset* model = nullptr;
  if (!t.has_preset() || t.preset().name().empty()) {
    errors.Add("tuning.preset", "Required value: Preset must be specified");
  } else {
    model = catalog_->FindModel(t.preset().name());
    if (model == nullptr) {
      errors.Add("tuning.preset.name", "Unsupported tuning preset name " + t.preset().name());
    } else if (!model->tuning) {
      errors.Add("tuning.preset.name", "Model " + model->name +
                                           " does not support tuning; models that do: " + [&] {
                                             std::vector<std::string> names;
                                             for (const auto& m : catalog_->models()) {
                                               if (m.tuning && !m.deprecated) names.push_back(m.name);
                                             }
                                             return absl::StrJoin(names, ", ");
                                           }());
      model = nullptr;
    } else if ((method == "lora" || method == "qlora") &&
               std::find(model->tuning->methods.begin(), model->tuning->methods.end(), method) ==
                   model->tuning->methods.end()) {
      errors.Add("tuning.method", "Model " + model->name + " does not support " + method + " tuning");
    }
  }
  // The training config: the user's ConfigMap, else the built-in default for the method.
  if (!t.config().empty()) {
    auto cm = ctx.GetConfigMap(ws.metadata().namespace_(), t.config());
    if (!cm) {
      // Kaito's default templates live in its release namespace; here they are built in.
      if (auto builtin = BuiltInTrainingConfig(t.config())) {
        cm.emplace();
        (*cm->mutable_data())["training_config.yaml"] = *builtin;
      }
    }
    if (!cm) {
      errors.Add("tuning.config", "Failed to evaluate validateConfigMap: ConfigMap '" + t.config() +
                                      "' specified in 'config' not found in namespace '" +
                                      ws.metadata().namespace_() + "'");
    } else if (!cm->data().contains("training_config.yaml")) {
      errors.Add("tuning.config", "Failed to evaluate validateConfigMap: ConfigMap '" +
                                      t.config() + "' does not contain 'training_config.yaml'");
    } else {
      for (const std::string& problem :
           CheckTrainingConfig(cm->data().at("training_config.yaml"), method)) {
        errors.Add("tuning.config", "Failed to evaluate validateConfigMap: " + problem);
      }
    }
  }
  // Input: exactly one source; URLs pass the SSRF guard; images parse.
  if (!t.has_input() || !HasDataSource(t.input())) {
    errors.Add("tuning.input", "Required value: Input must be specified");
  } else {
    const auto& in = t.input();
    const int sources = (!in.urls().empty()) + in.has_volume_source() + (!in.image().empty());
    if (sources != 1) {
      errors.Add("tuning.input", "Exactly one of URLs, Volume, or Image must be specified");
    }
    for (int i = 0; i < in.urls_size(); ++i) {
      if (std::string e = CheckInputUrl(in.urls(i)); !e.empty()) {
        errors.Add(absl::StrCat("tuning.input.urls[", i, "]"), "Invalid value: " + e);
      }
    }
    if (!in.image().empty()) {
      if (std::string e = CheckImageReference(in.image()); !e.empty()) {
        errors.Add("tuning.input.image", "Invalid value: " + e);
      }
    }
  }
  if (!t.has_output() || !HasDestination(t.output())) {
    errors.Add("tuning.output", "Required value: Output must be specified");
  } else {
    const auto& out = t.output();
    const int sinks = out.has_volume_source() + (!out.image().empty());
    if (sinks != 1) {
      errors.Add("tuning.output", "Exactly one of Volume or Image must be specified");
    }
    if (!out.image().empty() && out.image_push_secret().empty()) {
      errors.Add("tuning.output.imagePushSecret",
                 "Must specify imagePushSecret with destination image");
    } else if (!out.image_push_secret().empty() &&
               !ctx.SecretExists(ws.metadata().namespace_(), out.image_push_secret())) {
      // A warning, not an error: the Secret may be created after the workspace.
      warnings.push_back("tuning.output.imagePushSecret: Secret \"" + out.image_push_secret() +
                         "\" not found in namespace \"" + ws.metadata().namespace_() +
                         "\"; the adapter cannot be pushed until it exists");
    }
    // Kaito parses the output image on create and update alike
    // (DataDestination.validateCreate calls reference.ParseDockerRef).
    if (!out.image().empty()) {
      if (std::string e = CheckImageReference(out.image()); !e.empty()) {
        if (absl::StrContains(out.image(), "_HERE")) {
          e += "; it looks like a placeholder: replace it with your registry and repository "
               "(lower case), e.g. myregistry.azurecr.io/phi-3-adapter:0.0.1";
        }
        errors.Add("tuning.output.image", "Invalid value: " + e);
      }
    }
  }
  ValidateResource(ws, model, /*tuning=*/true, ctx, errors, warnings);
}

void WorkspaceValidator::ValidateUpdate(const v1::Workspace& ws, const v1::Workspace& old,
                                        FieldErrors& errors) const {
  if (old.has_inference() != ws.has_inference() && old.has_inference()) {
    errors.Add("inference", "Inference field cannot be toggled once set");
  }
  if (old.has_tuning() != ws.has_tuning() && old.has_tuning()) {
    errors.Add("tuning", "Tuning field cannot be toggled once set");
  }
  const auto& r = ws.resource();
  const auto& o = old.resource();
  if (r.has_count() != o.has_count() || r.count() != o.count()) {
    errors.Add("resource.count", "field is immutable");
  }
  if (!MessageDifferencer::Equals(r.partition(), o.partition()) ||
      r.has_partition() != o.has_partition()) {
    errors.Add("resource.partition", "field is immutable");
  }
  if (!MessageDifferencer::Equals(r.label_selector(), o.label_selector())) {
    errors.Add("resource.labelSelector", "field is immutable");
  }
  if (IsV1alpha1(ws)) {
    if (r.instance_type() != o.instance_type()) {
      errors.Add("resource.instanceType", "field is immutable");
    }
  } else if (options_.node_auto_provisioning) {
    if (!o.instance_type().empty() && r.instance_type().empty()) {
      errors.Add("resource.instanceType",
                 "instanceType is required when node auto-provisioning is enabled");
    } else if (!o.instance_type().empty() && r.instance_type() != o.instance_type()) {
      errors.Add("resource.instanceType",
                 "instanceType cannot be changed once set when node auto-provisioning is enabled");
    }
  } else if (!o.instance_type().empty() && !r.instance_type().empty() &&
             r.instance_type() != o.instance_type()) {
    errors.Add("resource.instanceType", "field is immutable");
  }
  if (ws.has_inference() && old.has_inference()) {
    const auto& i = ws.inference();
    const auto& oi = old.inference();
    if (!MessageDifferencer::Equals(i.preset(), oi.preset()) || i.has_preset() != oi.has_preset()) {
      errors.Add("inference.preset", "field is immutable");
    }
    if (i.has_template_() != oi.has_template_()) {
      errors.Add("inference.template", oi.has_template_()
                                           ? "field cannot be unset if it was set"
                                           : "field cannot be set if it was unset");
    }
  }
  if (ws.has_tuning() && old.has_tuning()) {
    const auto& t = ws.tuning();
    const auto& ot = old.tuning();
    if (!MessageDifferencer::Equals(t.preset(), ot.preset())) {
      errors.Add("tuning.preset", "Preset cannot be changed");
    }
    if (absl::AsciiStrToLower(t.method()) != absl::AsciiStrToLower(ot.method())) {
      errors.Add("tuning.method", "Method cannot be changed");
    }
    if (t.input().name() != ot.input().name()) {
      errors.Add("tuning.input.name", "field is immutable");
    }
  }
}

}  // namespace kaito::presets
