// Kaito's admission rules for Workspaces (shared/reference/kaito.md §2.2 and §2.3), on
// create and on update, for kaito.sh/v1beta1 and kaito.sh/v1alpha1, plus a few checks
// Kaito lacks (docs/validation.md). Every violation is reported at once with its field
// path; findings that must not block a write are returned as warnings.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "presets/catalog.h"
#include "common/field_errors.h"
#include "common/label_selector.h"
#include "presets/estimator.h"
#include "kaito/v1/config.pb.h"
#include "kaito/v1/node.pb.h"
#include "kaito/v1/workspace.pb.h"

namespace kaito::presets {

// What validation reads from the world; the server adapts its caches to it, tests use
// a fake.
class ValidationContext {
 public:
  virtual ~ValidationContext() = default;
  // Ready or not, every node whose labels match.
  virtual std::vector<v1::Node> NodesMatching(const LabelSelectorMatcher& selector) = 0;
  virtual std::optional<v1::ConfigMap> GetConfigMap(const std::string& ns,
                                                    const std::string& name) = 0;
  // Whether a Secret exists (only for warnings: a Secret may be created after the
  // workspace that names it). Contexts that cannot tell say yes.
  virtual bool SecretExists(const std::string& ns, const std::string& name) { return true; }
};

struct ValidationOptions {
  // Node auto-provisioning: the server has a provisioner (or runs --dev). Off means
  // bring-your-own nodes.
  bool node_auto_provisioning = false;
  // Kaito's CLOUD_PROVIDER: azure | aws | arc.
  std::string cloud = "azure";
  // Feature gates, as Kaito's defaults.
  bool vllm_default = true;
  bool enable_mig = false;
  bool enable_accelerator = false;
};

// kaito.sh/v1alpha1's schema default for resource.instanceType.
inline constexpr char kV1alpha1DefaultInstanceType[] = "Standard_NC24ads_A100_v4";

// Annotation keys (kaito.sh/...).
inline constexpr char kAnnotationRuntime[] = "kaito.sh/runtime";
inline constexpr char kAnnotationBypassResourceChecks[] = "kaito.sh/bypass-resource-checks";
inline constexpr char kAnnotationNodeImageFamily[] = "kaito.sh/node-image-family";
inline constexpr char kAnnotationPerformanceMode[] = "kaito.sh/performance-mode";
inline constexpr char kAnnotationUseLocalWeights[] = "kaito.sh/use-local-weights";
inline constexpr char kAnnotationEnableLb[] = "kaito.sh/enablelb";
inline constexpr char kAnnotationDisableBenchmark[] = "kaito.sh/disable-benchmark";

// Whether two workspaces have the same spec (resource, inference, tuning): the one
// definition of "the spec changed", which bumps `generation` and rolls workloads.
bool WorkspaceSpecEqual(const v1::Workspace& a, const v1::Workspace& b);

// The runtime of any workspace: "transformers" for tuning, else RuntimeOf.
std::string WorkspaceRuntime(const v1::Workspace& ws, const ValidationOptions& options);

// The `vllm.max-model-len` of an inference workspace's config ConfigMap; 0 when the
// workspace has none (tuning, no config, no key, a ConfigMap not found).
absl::StatusOr<int64_t> InferenceMaxModelLen(const v1::Workspace& ws, ValidationContext& context);

// "vllm" or "transformers" for an inference workspace (the kaito.sh/runtime annotation,
// else the default runtime).
std::string RuntimeOf(const v1::Workspace& ws, const ValidationOptions& options);

// Whether the workspace's nodes are auto-provisioned: always for kaito.sh/v1alpha1 (it
// has no bring-your-own mode), else when the server has node auto-provisioning.
bool AutoProvisioned(const v1::Workspace& ws, const ValidationOptions& options);

// resource.instanceType, with kaito.sh/v1alpha1's schema default when empty.
std::string EffectiveInstanceType(const v1::Workspace& ws);

// The `vllm.max-model-len` of an inference config document, 0 when absent.
absl::StatusOr<int64_t> MaxModelLenOf(const std::string& inference_config_yaml);

// The GPU configuration of a bring-your-own node from its NVIDIA labels; nullopt when
// they are missing or unparsable.
std::optional<GpuConfig> GpuConfigOfNode(const v1::Node& node);

class WorkspaceValidator {
 public:
  WorkspaceValidator(const Catalog* catalog, ValidationOptions options)
      : catalog_(catalog), options_(std::move(options)) {}

  // `old` is null on create.
  void Validate(const v1::Workspace& ws, const v1::Workspace* old, ValidationContext& context,
                FieldErrors& errors, std::vector<std::string>& warnings) const;

  const ValidationOptions& options() const { return options_; }
  const Catalog& catalog() const { return *catalog_; }

 private:
  void ValidateCreate(const v1::Workspace& ws, ValidationContext& ctx, FieldErrors& errors,
                      std::vector<std::string>& warnings) const;
  void ValidateUpdate(const v1::Workspace& ws, const v1::Workspace& old, FieldErrors& errors) const;
  void ValidateAnnotations(const v1::Workspace& ws, FieldErrors& errors) const;
  void ValidateInference(const v1::Workspace& ws, ValidationContext& ctx, FieldErrors& errors,
                         std::vector<std::string>& warnings) const;
  void ValidateReferences(const v1::Workspace& ws, FieldErrors& errors) const;
  void ValidateAdapters(const v1::InferenceSpec& inference, FieldErrors& errors) const;
  void ValidateResource(const v1::Workspace& ws, const ModelPreset* model, bool tuning,
                        ValidationContext& ctx, FieldErrors& errors,
                        std::vector<std::string>& warnings) const;
  void ValidatePartition(const v1::Workspace& ws, const ModelPreset* model, FieldErrors& errors,
                         std::vector<std::string>& warnings) const;
  void ValidateTuning(const v1::Workspace& ws, ValidationContext& ctx, FieldErrors& errors,
                      std::vector<std::string>& warnings) const;
  void CheckComputeCapability(const ModelPreset& model, const GpuConfig& gpu, bool qlora,
                              std::vector<std::string>& warnings) const;

  const Catalog* catalog_;
  ValidationOptions options_;
};

// Problems of a tuning config document (training_config.yaml), each as "path: message".
std::vector<std::string> CheckTrainingConfig(const std::string& yaml, const std::string& method);

}  // namespace kaito::presets
