// How kaito-server reaches the provisioner: the same asynchronous calls as the
// provisioner's own seam (provisioner/provider/node_provider.h), so that dev mode can run
// a provider in process and a deployment can reach kaito-provisioner over gRPC with no
// difference to the controllers. Completions run on a thread of the client's choosing
// and must not block (the node claim controller only records the outcome and enqueues).
#pragma once

#include "provisioner/provider/node_provider.h"

namespace kaito::server {

using ProvisionerClient = provisioner::NodeProvider;

}  // namespace kaito::server
