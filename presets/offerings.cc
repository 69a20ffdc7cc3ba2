#include "presets/offerings.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "presets/planner.h"

namespace kaito::presets {
namespace {

const std::string* AnnotationOf(const v1::Workspace& ws, const char* key) {
  auto it = ws.metadata().annotations().find(key);
  return it == ws.metadata().annotations().end() ? nullptr : &it->second;
}

std::string PathOf(const char* key) { return absl::StrCat("metadata.annotations[", key, "]"); }

std::vector<std::string> FallbackList(const std::string& value) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    std::string name(absl::StripAsciiWhitespace(part));
    if (!name.empty()) out.push_back(name);
  }
  return out;
}

std::vector<std::string> CapacityTypes(const v1::Workspace& ws) {
  const std::string* v = AnnotationOf(ws, kAnnotationCapacityType);
  if (v == nullptr || *v == kCapacityOnDemand) return {kCapacityOnDemand};
  if (*v == kCapacitySpot) return {kCapacitySpot};
  return {kCapacitySpot, kCapacityOnDemand};  // spot-then-on-demand
}

}  // namespace

void ValidateOfferingAnnotations(const Catalog& catalog, const ValidationOptions& options,
                                 const v1::Workspace& ws, FieldErrors& errors) {
  if (const std::string* v = AnnotationOf(ws, kAnnotationCapacityType)) {
    if (*v != kCapacityOnDemand && *v != kCapacitySpot && *v != "spot-then-on-demand") {
      errors.Add(PathOf(kAnnotationCapacityType),
                 "Unsupported value: \"" + *v +
                     "\": supported values: \"on-demand\", \"spot\", \"spot-then-on-demand\"");
    }
  }
  const std::string* v = AnnotationOf(ws, kAnnotationInstanceTypeFallback);
  if (v == nullptr || *v == "auto") return;
  const std::vector<std::string> names = FallbackList(*v);
  if (names.empty()) {
    errors.Add(PathOf(kAnnotationInstanceTypeFallback),
               "Invalid value: \"" + *v +
                   "\": expected \"auto\" or a comma-separated list of instance types");
    return;
  }
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (catalog.FindSku(options.cloud, name) == nullptr) {
      errors.Add(PathOf(kAnnotationInstanceTypeFallback), "Unsupported instance type \"" + name +
                                                              "\": not in the " + options.cloud +
                                                              " SKU catalog");
    } else if (!seen.insert(absl::AsciiStrToLower(name)).second) {
      errors.Add(PathOf(kAnnotationInstanceTypeFallback), "Duplicate value: \"" + name + "\"");
    }
  }
}

std::string FirstCapacityType(const v1::Workspace& ws) { return CapacityTypes(ws).front(); }

bool IsCapacityError(const std::string& error_code) {
  return error_code == "QuotaExceeded" || error_code == "SkuNotAvailable" ||
         error_code == "AllocationFailed" || error_code == "ZonalAllocationFailed" ||
         error_code == "OverconstrainedAllocationRequest";
}

bool HasFallback(const v1::Workspace& ws) {
  const std::string* capacity = AnnotationOf(ws, kAnnotationCapacityType);
  return AnnotationOf(ws, kAnnotationInstanceTypeFallback) != nullptr ||
         (capacity != nullptr && *capacity == "spot-then-on-demand");
}

std::vector<Offering> RankOfferings(const Catalog& catalog, const ValidationOptions& options,
                                    ValidationContext& context, const v1::Workspace& ws) {
  const std::string own = EffectiveInstanceType(ws);
  std::vector<std::string> types = {own};
  if (const std::string* v = AnnotationOf(ws, kAnnotationInstanceTypeFallback)) {
    // Candidates with the GPUs their plan needs (0 = it does not fit).
    struct Candidate {
      std::string name;
      int gpus = 0;
      size_t order = 0;
    };
    std::vector<Candidate> candidates;
    std::vector<std::string> names;
    const bool automatic = *v == "auto";
    if (automatic) {
      for (const Sku* sku : catalog.SkusOf(options.cloud)) {
        if (!sku->retired && sku->gpu_count > 0) names.push_back(sku->name);
      }
    } else {
      names = FallbackList(*v);
    }
    for (size_t i = 0; i < names.size(); ++i) {
      const Sku* sku = catalog.FindSku(options.cloud, names[i]);
      if (sku == nullptr || absl::EqualsIgnoreCase(sku->name, own)) continue;
      v1::Workspace sized = ws;
      sized.mutable_resource()->set_instance_type(sku->name);
      sized.mutable_status()->set_target_node_count(0);
      const v1::WorkspacePlan plan = PlanWorkspace(catalog, options, context, sized);
      if (!plan.sizing_error().empty()) continue;
      candidates.push_back({sku->name, std::max(1, plan.target_node_count()) * sku->gpu_count, i});
    }
    if (automatic) {
      std::stable_sort(candidates.begin(), candidates.end(),
                       [](const Candidate& a, const Candidate& b) {
                         return a.gpus != b.gpus ? a.gpus < b.gpus : a.name < b.name;
                       });
    }
    for (const Candidate& c : candidates) types.push_back(c.name);
  }
  std::vector<Offering> offerings;
  for (const std::string& type : types) {
    for (const std::string& capacity : CapacityTypes(ws)) {
      offerings.push_back({type, capacity});
    }
  }
  return offerings;
}

}  // namespace kaito::presets
