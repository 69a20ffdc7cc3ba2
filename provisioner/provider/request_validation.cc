#include "provisioner/provider/request_validation.h"

#include <string>

#include "common/field_errors.h"
#include "common/k8s_names.h"

namespace kaito::provisioner {
namespace {

void CheckClaimName(std::string_view claim_name, FieldErrors& errors) {
  if (std::string problem = CheckDnsLabel(claim_name); !problem.empty()) {
    errors.Add("claim_name", problem);
  }
}

std::string Subject(std::string_view claim_name) {
  return "node claim \"" + std::string(claim_name.substr(0, 80)) + "\"";
}

}  // namespace

absl::Status ValidateClaimName(std::string_view claim_name) {
  FieldErrors errors;
  CheckClaimName(claim_name, errors);
  return errors.ToStatus(Subject(claim_name));
}

absl::Status ValidateCreateNodeRequest(const v1::CreateNodeRequest& request) {
  FieldErrors errors;
  CheckClaimName(request.claim_name(), errors);
  const v1::NodeClaimSpec& spec = request.spec();
  if (spec.instance_type().empty()) errors.Add("spec.instance_type", "Required value");
  for (const auto& [key, value] : spec.labels()) {
    const std::string path = "spec.labels[" + key.substr(0, 80) + "]";
    if (std::string problem = CheckQualifiedName(key); !problem.empty()) {
      errors.Add(path, problem);
    }
    if (std::string problem = CheckLabelValue(value); !problem.empty()) {
      errors.Add(path, problem);
    }
  }
  for (int i = 0; i < spec.taints_size(); ++i) {
    const v1::Taint& taint = spec.taints(i);
    const std::string path = "spec.taints[" + std::to_string(i) + "]";
    if (std::string problem = CheckQualifiedName(taint.key()); !problem.empty()) {
      errors.Add(path + ".key", problem);
    }
    if (std::string problem = CheckLabelValue(taint.value()); !problem.empty()) {
      errors.Add(path + ".value", problem);
    }
    if (taint.effect() != "NoSchedule" && taint.effect() != "PreferNoSchedule" &&
        taint.effect() != "NoExecute") {
      errors.Add(path + ".effect",
                 "Unsupported value: \"" + taint.effect().substr(0, 80) +
                     "\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"");
    }
  }
  if (spec.disk_size_gib() < 0) errors.Add("spec.disk_size_gib", "must be >= 0");
  return errors.ToStatus(Subject(request.claim_name()));
}

absl::Status ValidateGetQuotaRequest(const v1::GetQuotaRequest& request) {
  FieldErrors errors;
  const std::string& type = request.instance_type();
  if (type.empty()) {
    errors.Add("instance_type", "Required value");
  } else if (type.size() > 128 ||
             type.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmn"
                                    "opqrstuvwxyz0123456789_-") != std::string::npos) {
    errors.Add("instance_type", "Invalid value: \"" + type.substr(0, 80) +
                                    "\": at most 128 letters, digits, '_' and '-'");
  }
  if (request.nodes() < 0 || request.nodes() > 10000) {
    errors.Add("nodes", "Invalid value: " + std::to_string(request.nodes()) +
                            ": must be between 0 and 10000");
  }
  return errors.ToStatus("GetQuota request");
}

}  // namespace kaito::provisioner
