#include "presets/estimator.h"

#include <cmath>

#include "absl/strings/str_format.h"

namespace kaito::presets {

GpuConfig GpuConfig::FromSku(const Sku& sku) {
  GpuConfig g;
  g.source = sku.name;
  g.gpu_model = sku.gpu_model;
  g.gpu_count = sku.gpu_count;
  g.gpu_memory_bytes = sku.gpu_memory_bytes;
  g.compute_capability = sku.ComputeCapability();
  return g;
}

absl::StatusOr<Estimate> EstimateNodes(const ModelPreset& model, const GpuConfig& gpu,
                                       int64_t max_model_len) {
  if (gpu.gpu_count <= 0 || gpu.gpu_memory_bytes <= 0) {
    return absl::FailedPreconditionError("no GPU memory information for " + gpu.source);
  }
  Estimate e;
  e.max_model_len = max_model_len > 0 ? max_model_len : kDefaultMaxModelLen;
  const double gib = static_cast<double>(kGiB);
  const double per_gpu = static_cast<double>(gpu.PerGpuBytes()) / gib;
  const double available = per_gpu * kGpuMemoryUtilization;
  // Fixed per GPU: 2.3 GiB of CUDA context and activations, plus the KV cache of one
  // sequence of max_model_len tokens, split over the GPUs of a node.
  const double kv = static_cast<double>(e.max_model_len) *
                    static_cast<double>(model.bytes_per_token) / gpu.gpu_count / gib;
  e.fixed_per_gpu_gib = 2.3 + kv;
  if (available <= e.fixed_per_gpu_gib) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "GPU memory is too small: %s has %.2fGi usable per GPU, but the runtime and the KV "
        "cache for %d tokens need %.2fGi per GPU; use a larger instance type or a smaller "
        "max-model-len",
        gpu.source, available, e.max_model_len, e.fixed_per_gpu_gib));
  }
  e.available_per_gpu_gib = (available - e.fixed_per_gpu_gib) / 1.05;
  const double weights = static_cast<double>(model.weights_bytes) / gib;
  e.min_gpus = static_cast<int>(std::floor(weights * 1.02 / e.available_per_gpu_gib)) + 1;
  e.nodes = (e.min_gpus + gpu.gpu_count - 1) / gpu.gpu_count;
  e.weights_per_gpu_gib = weights / std::min(e.min_gpus, e.nodes * gpu.gpu_count);
  if (e.nodes > 1 && gpu.mig) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "model %s needs %d GPUs but a MIG slice cannot span nodes", model.name, e.min_gpus));
  }
  if (e.nodes > 1 && !model.distributed) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "model %s needs %d nodes of %s but does not support distributed (multi-node) "
        "inference",
        model.name, e.nodes, gpu.source));
  }
  return e;
}

}  // namespace kaito::presets
