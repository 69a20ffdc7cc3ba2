// Facts Azure derives from a VM size's name: its compute quota family and vCPUs. Shared
// by the simulated cloud's messages, the Azure provider's quota check and the fake ARM.
#pragma once

#include <string>

namespace kaito::provisioner {

struct VmSizeFacts {
  // The compute usage name of the size's quota family: "standardNCADSA100v4Family".
  std::string family;
  // vCPUs of one VM (at least 1).
  int vcpus = 1;
};

// "Standard_NC24ads_A100_v4" -> {"standardNCADSA100v4Family", 24}: series letters and
// feature letters upper-cased, the remaining parts appended as they are.
VmSizeFacts AzureVmSizeFacts(const std::string& vm_size);

}  // namespace kaito::provisioner
