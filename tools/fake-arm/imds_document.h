// The instance metadata kaito-fake-arm serves at /metadata/instance (§4 of the reference):
// the document of a VM in one of the fake cluster's scale sets, and the lookup of a path
// into it as IMDS answers one.
#pragma once

#include <string>
#include <vector>

#include "tools/fake-arm/agent_pool_model.h"
#include "tools/fake-arm/arm_wire.h"

namespace kaito::fakearm {

// `{"compute":{...},"network":{...}}` for instance 0 of pool "gpu" (vmSize
// Standard_NC24ads_A100_v4) in the cluster's node resource group. Every primitive is a
// string, missing values "" (as IMDS writes them).
Json DefaultImdsDocument(const ClusterIdentity& identity);

struct ImdsAnswer {
  int status = 200;
  std::string body;
  std::string content_type;
};

// The node at `path` (segments under /metadata/instance; array elements by index).
// `format` "json" (the default, any node) or "text": a leaf as its bare value, an inner node
// as its child names one per line (inner children with a trailing "/"). 404 for a path that
// does not exist, 400 for another format; error bodies are IMDS's `{"error": "..."}`.
ImdsAnswer ImdsLookup(const Json& document, const std::vector<std::string>& path,
                      const std::string& format);

}  // namespace kaito::fakearm
