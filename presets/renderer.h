// Rendering: from (workspace, preset, the GPUs of a node, node count) to the workloads
// that agents run: image, command and arguments of the vLLM and Transformers runtimes,
// environment, ports, volumes, GPU count and probes; the leader and workers of a
// multi-node deployment; adapter pullers; the tuning job with its input downloader and
// output pusher; and custom `inference.template` workspaces. A pure function: the same
// input renders the same output (golden files in test/presets/golden/).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "presets/catalog.h"
#include "presets/estimator.h"
#include "kaito/v1/workload.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito::presets {

struct RenderOptions {
  // Where Kaito's images come from (PRESET_REGISTRY_NAME) and the base image tag.
  std::string registry = "mcr.microsoft.com/aks/kaito";
  std::string base_tag = "0.5.0";
  std::string skopeo_image = "mcr.microsoft.com/aks/skopeo:1.14.4-6";
  std::string oras_image = "ghcr.io/oras-project/oras:v1.2.2";
};

struct RenderInput {
  const v1::Workspace* workspace = nullptr;
  const ModelPreset* model = nullptr;  // Null for template workspaces.
  GpuConfig gpu;                       // One node's GPUs.
  int nodes = 1;                       // Target node count.
  std::string runtime = "vllm";        // "vllm" | "transformers" (inference only).
  bool nvme = false;                   // The node has local NVMe for weights.
};

// One workload per node (index 0 is the leader). INVALID_ARGUMENT when the input cannot
// be rendered (no preset and no template, zero GPUs for a preset).
absl::StatusOr<std::vector<v1::WorkloadSpec>> RenderWorkloads(const RenderOptions& options,
                                                              const RenderInput& input);

// The main command of a workload as one shell line, for `kaitoctl apply --dry-run`.
std::string CommandLine(const v1::ContainerSpec& container);

}  // namespace kaito::presets
