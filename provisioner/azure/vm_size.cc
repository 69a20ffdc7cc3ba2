#include "provisioner/azure/vm_size.h"

#include <cctype>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace kaito::provisioner {

VmSizeFacts AzureVmSizeFacts(const std::string& vm_size) {
  absl::string_view name = vm_size;
  if (absl::StartsWithIgnoreCase(name, "Standard_")) name.remove_prefix(9);
  std::vector<absl::string_view> parts = absl::StrSplit(name, '_');
  VmSizeFacts facts;
  facts.family = "standard";
  int cores = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i == 0) {
      // Series letters, vCPU digits, feature letters: "NC" "24" "ads".
      for (char c : parts[0]) {
        if (std::isdigit(static_cast<unsigned char>(c))) {
          cores = cores * 10 + (c - '0');
        } else {
          facts.family += absl::ascii_toupper(static_cast<unsigned char>(c));
        }
      }
    } else {
      facts.family += std::string(parts[i]);
    }
  }
  facts.family += "Family";
  facts.vcpus = cores > 0 ? cores : 1;
  return facts;
}

}  // namespace kaito::provisioner
