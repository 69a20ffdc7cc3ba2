// The VM sizes kaito-fake-arm accepts in an agent pool, and their quota facts: the azure
// SKUs of the preset catalog (presets/catalog/skus.yaml) plus the CPU sizes AKS system
// pools use. Immutable after construction, so safe to share between threads.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "presets/catalog.h"
#include "provisioner/azure/vm_size.h"

namespace kaito::fakearm {

// A compute quota family as `.../usages` lists it.
struct QuotaFamily {
  std::string name;            // "standardNCADSA100v4Family"
  std::string localized_name;  // "Standard NCADS_A100_v4 Family vCPUs"
};

class VmSizeTable {
 public:
  // The azure SKUs of `catalog`, plus Standard_D2s_v3 and Standard_DS2_v2.
  explicit VmSizeTable(const presets::Catalog& catalog);

  // Whether `vm_size` is accepted (case-insensitively).
  bool Known(const std::string& vm_size) const;
  // The size as the table spells it ("standard_nc24ads_a100_v4" -> "Standard_NC24ads_A100_v4");
  // `vm_size` itself when unknown.
  std::string Canonical(const std::string& vm_size) const;
  // Quota family and vCPUs of the canonical spelling.
  provisioner::VmSizeFacts Facts(const std::string& vm_size) const;
  // Every family of the table, once each, in table order.
  const std::vector<QuotaFamily>& families() const { return families_; }

 private:
  std::map<std::string, std::string> sizes_;  // lower-cased name -> name as the table has it
  std::vector<QuotaFamily> families_;
};

}  // namespace kaito::fakearm
