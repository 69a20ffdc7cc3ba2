#include "server/registry/kinds/workspace_policy.h"

#include "absl/strings/numbers.h"
#include "common/label_selector.h"
#include "presets/workspace_validator.h"
#include "server/registry/kinds/type_meta.h"

namespace kaito::server {

void ValidateWorkspaceStructure(const v1::Workspace& ws, FieldErrors& errors) {
  if (ws.has_resource() && ws.resource().has_label_selector()) {
    LabelSelectorMatcher::FromProto(ws.resource().label_selector(), "resource.labelSelector",
                                    errors);
  }
  if (ws.resource().has_count() && ws.resource().count() < 0) {
    errors.Add("resource.count", "Invalid value: " + std::to_string(ws.resource().count()) +
                                     ": must be greater than or equal to 0");
  }
  if (ws.has_termination_grace_period_seconds() && ws.termination_grace_period_seconds() < 0) {
    errors.Add("terminationGracePeriodSeconds",
               "Invalid value: " + std::to_string(ws.termination_grace_period_seconds()) +
                   ": must be greater than or equal to 0");
  }
  CheckStringWithin(ws.resource().instance_type(), 253, "resource.instanceType", errors);
  CheckStringWithin(ws.inference().preset().name(), 253, "inference.preset.name", errors);
  CheckStringWithin(ws.tuning().preset().name(), 253, "tuning.preset.name", errors);
  CheckStringWithin(ws.inference().config(), 253, "inference.config", errors);
  CheckStringWithin(ws.tuning().config(), 253, "tuning.config", errors);
}

KindPolicy<v1::Workspace> WorkspacePolicy(WorkspaceCheck extra) {
  KindPolicy<v1::Workspace> p;
  p.kind = "Workspace";
  p.resource = "workspaces";
  p.name_is_dns_label = true;  // Kaito: the name must be a DNS-1123 label.
  p.normalize = [](v1::Workspace& ws, FieldErrors& errors) {
    NormalizeTypeMeta("kaito.sh/v1beta1", {"kaito.sh/v1beta1", "kaito.sh/v1alpha1"}, "Workspace",
                      ws.mutable_api_version(), ws.mutable_kind(), errors);
    // The defaults of Kaito's CRD schema, applied before validation and storing.
    if (!ws.resource().has_count()) ws.mutable_resource()->set_count(1);
    ws.mutable_resource()->set_instance_type(presets::EffectiveInstanceType(ws));
  };
  p.validate = [extra = std::move(extra)](const v1::Workspace& ws, const v1::Workspace* old,
                                          FieldErrors& errors,
                                          std::vector<std::string>& warnings) {
    ValidateWorkspaceStructure(ws, errors);
    if (errors.empty() && extra) extra(ws, old, errors, warnings);
  };
  p.spec_equal = presets::WorkspaceSpecEqual;
  p.prepare = [](v1::Workspace& ws, const v1::Workspace* stored) {
    // Status is written only by the controller, never through Create or Update.
    if (stored) {
      *ws.mutable_status() = stored->status();
      if (!stored->has_status()) ws.clear_status();
    } else {
      ws.clear_status();
    }
  };
  p.on_spec_unchanged_update = [](v1::Workspace& ws, const v1::Workspace& stored,
                                  absl::Time now) {
    // Applying a Failed workspace again asks for another try (the quota was raised, the
    // image fixed): recorded as an annotation the controller reads.
    if (stored.status().state() != "Failed") return;
    int64_t retries = 0;
    auto it = stored.metadata().annotations().find(kAnnotationRetryRequested);
    if (it != stored.metadata().annotations().end()) (void)absl::SimpleAtoi(it->second, &retries);
    (*ws.mutable_metadata()->mutable_annotations())[kAnnotationRetryRequested] =
        std::to_string(retries + 1);
  };
  return p;
}

}  // namespace kaito::server
