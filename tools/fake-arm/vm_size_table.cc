#include "tools/fake-arm/vm_size_table.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace kaito::fakearm {
namespace {

// "Standard_NC24ads_A100_v4" -> "Standard NCADS_A100_v4 Family vCPUs": the series and
// feature letters of the first part upper-cased (its vCPU digits dropped), the other
// parts as they are, as the portal names the family.
std::string LocalizedFamilyName(const std::string& vm_size) {
  absl::string_view name = vm_size;
  if (absl::StartsWithIgnoreCase(name, "Standard_")) name.remove_prefix(9);
  std::vector<std::string> parts = absl::StrSplit(name, '_');
  std::string series;
  for (char c : parts[0]) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) {
      series += absl::ascii_toupper(static_cast<unsigned char>(c));
    }
  }
  parts[0] = series;
  return absl::StrCat("Standard ", absl::StrJoin(parts, "_"), " Family vCPUs");
}

}  // namespace

VmSizeTable::VmSizeTable(const presets::Catalog& catalog) {
  std::vector<std::string> ordered;
  for (const presets::Sku* sku : catalog.SkusOf("azure")) ordered.push_back(sku->name);
  ordered.push_back("Standard_D2s_v3");
  ordered.push_back("Standard_DS2_v2");
  std::set<std::string> seen_families;
  for (const std::string& name : ordered) {
    sizes_.emplace(absl::AsciiStrToLower(name), name);
    const provisioner::VmSizeFacts facts = provisioner::AzureVmSizeFacts(name);
    if (seen_families.insert(facts.family).second) {
      families_.push_back({facts.family, LocalizedFamilyName(name)});
    }
  }
}

bool VmSizeTable::Known(const std::string& vm_size) const {
  return sizes_.count(absl::AsciiStrToLower(vm_size)) > 0;
}

std::string VmSizeTable::Canonical(const std::string& vm_size) const {
  auto it = sizes_.find(absl::AsciiStrToLower(vm_size));
  return it == sizes_.end() ? vm_size : it->second;
}

provisioner::VmSizeFacts VmSizeTable::Facts(const std::string& vm_size) const {
  return provisioner::AzureVmSizeFacts(Canonical(vm_size));
}

}  // namespace kaito::fakearm
