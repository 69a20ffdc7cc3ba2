// Capacity fallback: the offerings (instance type x capacity type) a workspace allows, in
// the order they are tried. A workspace names its instance type; it may allow others with
// `kaito.sh/instance-type-fallback` (a comma-separated list of catalog SKUs, or `auto`:
// every SKU of the cloud on which the model fits, fewest GPUs first) and spot capacity
// with `kaito.sh/capacity-type` (`on-demand`, the default; `spot`; `spot-then-on-demand`).
// The control plane walks this list when a node claim fails for lack of capacity or quota.
#pragma once

#include <string>
#include <vector>

#include "common/field_errors.h"
#include "kaito/v1/workspace.pb.h"
#include "presets/catalog.h"
#include "presets/workspace_validator.h"

namespace kaito::presets {

inline constexpr char kAnnotationInstanceTypeFallback[] = "kaito.sh/instance-type-fallback";
inline constexpr char kAnnotationCapacityType[] = "kaito.sh/capacity-type";
inline constexpr char kCapacityOnDemand[] = "on-demand";
inline constexpr char kCapacitySpot[] = "spot";

struct Offering {
  std::string instance_type;
  // kCapacityOnDemand or kCapacitySpot.
  std::string capacity_type = kCapacityOnDemand;

  // "Standard_NC24ads_A100_v4/spot": the key of the unavailable-offerings cache.
  std::string Key() const { return instance_type + "/" + capacity_type; }
  // "Standard_NC24ads_A100_v4 (spot)", for events.
  std::string Describe() const { return instance_type + " (" + capacity_type + ")"; }
  bool operator==(const Offering& other) const = default;
};

// Checks both annotations: the capacity type is one of the three values; the fallback is
// `auto` or a list of SKUs the catalog knows for the cloud (no duplicates, not empty).
// Errors are added at `metadata.annotations[KEY]`.
void ValidateOfferingAnnotations(const Catalog& catalog, const ValidationOptions& options,
                                 const v1::Workspace& ws, FieldErrors& errors);

// The capacity type tried first (the annotation's first; on-demand by default).
std::string FirstCapacityType(const v1::Workspace& ws);

// Whether a node claim's error class (its status.error_code) says the offering has no
// capacity or quota, so that another offering may succeed: QuotaExceeded, SkuNotAvailable,
// AllocationFailed, ZonalAllocationFailed, OverconstrainedAllocationRequest.
bool IsCapacityError(const std::string& error_code);

// Whether the workspace allows more than its own instance type on on-demand capacity.
bool HasFallback(const v1::Workspace& ws);

// The offerings in the order they are tried: the workspace's instance type first, then
// each fallback type on which the plan fits (sizing without error), each type with the
// capacity types in the annotation's order.
std::vector<Offering> RankOfferings(const Catalog& catalog, const ValidationOptions& options,
                                    ValidationContext& context, const v1::Workspace& ws);

}  // namespace kaito::presets
