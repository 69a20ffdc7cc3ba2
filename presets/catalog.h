// The model catalog and the GPU SKU catalog: the one place that answers "what is model
// X" and "what GPUs does instance type Y have". Loaded once at start from YAML (the files
// under presets/catalog/, embedded in the binary, or a directory given at run time);
// an invalid file is a startup error that names the entry. Immutable after loading, so
// it is safe to share between threads without locks.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kaito::presets {

inline constexpr int64_t kGiB = int64_t{1} << 30;

// Parses a Kubernetes quantity with a binary suffix ("27.31Gi", "512Mi", "1Ti") or none
// (bytes). Fractions round up to whole bytes, as resource.Quantity does.
absl::StatusOr<int64_t> ParseQuantity(const std::string& text);
// "27.31Gi" style, two decimals at most.
std::string FormatGi(int64_t bytes);

struct TuningSupport {
  int64_t disk_bytes = 0;
  int64_t model_bytes = 0;  // GPU memory the tuning job needs for the model.
  std::vector<std::string> methods = {"lora", "qlora"};
};

struct ModelPreset {
  std::string name;                  // The preset name users write ("phi-4-mini-instruct").
  std::string id;                    // The Hugging Face id ("microsoft/Phi-4-mini-instruct").
  std::vector<std::string> aliases;  // Other accepted names.
  int64_t weights_bytes = 0;         // Kaito's TotalSafeTensorFileSize.
  int64_t disk_bytes = 0;            // Disk for weights and cache.
  int64_t context_length = 0;        // max_position_embeddings; 0 = unknown.
  int64_t bytes_per_token = 0;       // KV cache per token; 0 = unknown.
  std::string architecture;
  std::string quantization;          // Empty when not quantized.
  std::string dtype = "bfloat16";    // Default inference/tuning dtype.
  bool vllm = true;                  // Served by the vLLM runtime.
  bool transformers = false;         // Served by the Hugging Face Transformers runtime.
  bool distributed = true;           // Can span several nodes (vLLM, pipeline parallel).
  bool gated = false;                // Needs an HF_TOKEN (modelAccessSecret).
  bool download_at_runtime = true;   // Weights come from the hub at start (not an image).
  bool deprecated = false;
  bool disallow_lora = false;        // vLLM cannot load LoRA adapters for it.
  std::optional<TuningSupport> tuning;
  std::string tool_call_parser;
  std::string reasoning_parser;
  std::string chat_template;         // File under /workspace/chat_templates.
  std::string tokenizer_mode;        // "mistral", ...; empty = auto.
  std::string tag;                   // Image tag of Kaito's base or weights image.

  // The name vLLM serves it under: the last path segment of the id, lower-cased.
  std::string ServedName() const;
};

struct Sku {
  std::string name;
  std::string cloud;         // azure | aws | arc
  std::string gpu_model;
  int gpu_count = 0;
  int64_t gpu_memory_bytes = 0;  // Total of the node.
  bool nvme = false;
  std::string compute_capability;  // "8.0"; empty when not NVIDIA.
  bool retired = false;

  int64_t PerGpuBytes() const { return gpu_count > 0 ? gpu_memory_bytes / gpu_count : 0; }
  // Major*10+minor ("8.6" -> 86); 0 when unknown.
  int ComputeCapability() const;
};

class Catalog {
 public:
  // Parses both documents. Every problem is reported with the entry it concerns:
  // `models.yaml: models[3] (phi-4): weights: ...`.
  static absl::StatusOr<Catalog> Parse(const std::string& models_yaml,
                                       const std::string& skus_yaml);
  // The catalog compiled into the binary (presets/catalog/*.yaml).
  static absl::StatusOr<Catalog> Embedded();
  // models.yaml and skus.yaml from `dir`.
  static absl::StatusOr<Catalog> FromDirectory(const std::string& dir);

  // By preset name, alias or Hugging Face id, case-insensitively; null when unknown.
  const ModelPreset* FindModel(const std::string& name) const;
  // By name within one cloud (azure | aws | arc), case-insensitively; null when unknown.
  const Sku* FindSku(const std::string& cloud, const std::string& name) const;

  const std::vector<ModelPreset>& models() const { return models_; }
  const std::vector<Sku>& skus() const { return skus_; }
  std::vector<const Sku*> SkusOf(const std::string& cloud) const;

 private:
  std::vector<ModelPreset> models_;
  std::vector<Sku> skus_;
  std::map<std::string, size_t> model_index_;  // lower-cased name/alias/id -> index
  std::map<std::string, size_t> sku_index_;    // cloud + "/" + lower-cased name -> index
};

}  // namespace kaito::presets
