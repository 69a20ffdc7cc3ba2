#include "presets/planner.h"

#include "presets/renderer.h"

#include "absl/strings/str_format.h"

namespace kaito::presets {
namespace {

std::string GiString(double gib) {
  std::string s = absl::StrFormat("%.2f", gib);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s + "Gi";
}

}  // namespace

namespace {

v1::WorkspacePlan Size(const Catalog& catalog, const ValidationOptions& options,
                       ValidationContext& context, const v1::Workspace& ws,
                       std::optional<GpuConfig>& gpu, const ModelPreset*& model, bool& nvme);

}  // namespace

v1::WorkspacePlan PlanWorkspace(const Catalog& catalog, const ValidationOptions& options,
                                ValidationContext& context, const v1::Workspace& ws) {
  std::optional<GpuConfig> gpu;
  const ModelPreset* model = nullptr;
  bool nvme = false;
  v1::WorkspacePlan plan = Size(catalog, options, context, ws, gpu, model, nvme);
  const bool is_template = ws.has_inference() && ws.inference().has_template_();
  if (!plan.sizing_error().empty() || (!is_template && (model == nullptr || !gpu))) return plan;
  RenderInput in;
  in.workspace = &ws;
  in.model = model;
  if (gpu) in.gpu = *gpu;
  in.nodes = std::max(1, plan.target_node_count());
  in.runtime = plan.runtime();
  in.nvme = nvme;
  auto workloads = RenderWorkloads(RenderOptions(), in);
  if (!workloads.ok()) {
    plan.set_sizing_error(std::string(workloads.status().message()));
    return plan;
  }
  for (auto& w : *workloads) *plan.add_workloads() = std::move(w);
  return plan;
}

namespace {

v1::WorkspacePlan Size(const Catalog& catalog, const ValidationOptions& options,
                       ValidationContext& context, const v1::Workspace& ws,
                       std::optional<GpuConfig>& gpu, const ModelPreset*& model, bool& nvme) {
  v1::WorkspacePlan plan;
  const bool tuning = ws.has_tuning();
  plan.set_kind(tuning ? "tuning" : "inference");
  plan.set_runtime(WorkspaceRuntime(ws, options));
  const std::string& preset_name =
      tuning ? ws.tuning().preset().name() : ws.inference().preset().name();
  model = preset_name.empty() ? nullptr : catalog.FindModel(preset_name);
  if (model != nullptr) plan.set_preset(model->name);

  const std::string instance_type = EffectiveInstanceType(ws);
  if (AutoProvisioned(ws, options)) {
    plan.set_instance_type(instance_type);
    if (const Sku* sku = catalog.FindSku(options.cloud, instance_type)) {
      gpu = GpuConfig::FromSku(*sku);
      nvme = sku->nvme;
    } else {
      plan.set_sizing_error("instance type " + instance_type +
                            " is not in the SKU catalog; cannot size the workspace");
    }
  } else {
    plan.set_instance_type(kPlanBringYourOwnNodes);
    FieldErrors ignored;
    auto selector = LabelSelectorMatcher::FromProto(ws.resource().label_selector(),
                                                    "resource.labelSelector", ignored);
    for (const v1::Node& node : context.NodesMatching(selector)) {
      if ((gpu = GpuConfigOfNode(node))) break;
    }
    if (!gpu) plan.set_sizing_error("no matching node reports its GPUs");
  }
  if (gpu) {
    plan.set_gpu_model(gpu->gpu_model);
    plan.set_gpus_per_node(gpu->gpu_count);
    plan.set_gpu_memory_per_gpu(FormatGi(gpu->PerGpuBytes()));
  }

  // The node count: the estimator for vLLM inference, `count` for transformers, 1 for tuning.
  if (tuning) {
    plan.set_target_node_count(1);
  } else if (plan.runtime() == "transformers" || model == nullptr) {
    plan.set_target_node_count(ws.resource().has_count() ? std::max(1, ws.resource().count()) : 1);
  }
  if (model == nullptr || !gpu) return plan;
  const double gib = static_cast<double>(kGiB);
  if (!tuning && plan.runtime() == "vllm") {
    const int64_t max_model_len = InferenceMaxModelLen(ws, context).value_or(0);
    auto estimate = EstimateNodes(*model, *gpu, max_model_len);
    if (!estimate.ok()) {
      plan.set_sizing_error(std::string(estimate.status().message()));
      return plan;
    }
    plan.set_target_node_count(estimate->nodes);
    plan.set_min_gpus(estimate->min_gpus);
    plan.set_max_model_len(estimate->max_model_len);
    plan.set_estimated_memory_per_gpu(
        GiString(estimate->weights_per_gpu_gib + estimate->fixed_per_gpu_gib));
    return plan;
  }
  const int gpus = std::max(1, gpu->gpu_count * plan.target_node_count());
  const int64_t bytes = tuning && model->tuning ? model->tuning->model_bytes : model->weights_bytes;
  plan.set_min_gpus(gpus);
  plan.set_estimated_memory_per_gpu(GiString(static_cast<double>(bytes) / gib / gpus));
  return plan;
}

}  // namespace

}  // namespace kaito::presets
