// Kaito's node estimator: how many nodes (and GPUs) a vLLM inference workspace needs
// for a model on a GPU configuration, from the model's weights and KV cache per token.
// A pure function; the formulas are Kaito's (shared/reference/kaito.md §3).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "presets/catalog.h"

namespace kaito::presets {

// The GPUs of one node: from the SKU catalog (node auto-provisioning) or from a node's
// GPU labels (bring your own).
struct GpuConfig {
  std::string source;        // The instance type, or the node name, for messages.
  std::string gpu_model;
  int gpu_count = 0;
  int64_t gpu_memory_bytes = 0;  // Total of the node.
  int compute_capability = 0;    // Major*10+minor; 0 = unknown.
  bool mig = false;              // A MIG slice: one GPU of the slice's memory.

  int64_t PerGpuBytes() const { return gpu_count > 0 ? gpu_memory_bytes / gpu_count : 0; }
  static GpuConfig FromSku(const Sku& sku);
};

inline constexpr double kGpuMemoryUtilization = 0.84;
inline constexpr int64_t kDefaultMaxModelLen = 2048;

struct Estimate {
  int nodes = 0;
  int min_gpus = 0;
  int64_t max_model_len = 0;
  double available_per_gpu_gib = 0;  // After the fixed overhead and the 5% margin.
  double fixed_per_gpu_gib = 0;      // CUDA context + activations + KV cache for max_model_len.
  double weights_per_gpu_gib = 0;    // Model weights spread over the GPUs used.
};

// `max_model_len` 0 means the default (2048). Errors: FAILED_PRECONDITION with Kaito's
// meaning ("GPU memory is too small", "needs N nodes but ... not distributed", MIG).
absl::StatusOr<Estimate> EstimateNodes(const ModelPreset& model, const GpuConfig& gpu,
                                       int64_t max_model_len);

}  // namespace kaito::presets
