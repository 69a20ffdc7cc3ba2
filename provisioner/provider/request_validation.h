// The one definition of a well-formed provisioner request, shared by the gRPC service
// (which rejects bad input before it reaches a provider) and by providers (which may be
// called in process, without the service in front).
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "kaito/v1/provisioner.pb.h"

namespace kaito::provisioner {

// INVALID_ARGUMENT naming `claim_name` unless it is an RFC 1123 label (<= 63 characters):
// the claim name becomes part of the cloud's resource and node names.
absl::Status ValidateClaimName(std::string_view claim_name);

// INVALID_ARGUMENT listing every bad field by path (`claim_name`, `spec.instance_type`,
// `spec.labels[KEY]`, `spec.taints[I].effect`, ...); OK otherwise.
absl::Status ValidateCreateNodeRequest(const v1::CreateNodeRequest& request);

// INVALID_ARGUMENT naming `instance_type` (required; at most 128 letters, digits, '_' and
// '-') or `nodes` (0 to 10000).
absl::Status ValidateGetQuotaRequest(const v1::GetQuotaRequest& request);

}  // namespace kaito::provisioner
