// The seam between the provisioner and a cloud: create, read, delete and list the
// machine of a node claim. Implementations: `SimulatedProvider` (dev mode, tests,
// benchmarks) and `AzureProvider` (one AKS agent pool per claim). The cloud is the source of
// truth: a provider keeps no database and can list what exists after a restart.
//
// Every call is asynchronous: it returns at once and completes `done` later, on a thread
// of the provider's choosing; `done` must not block. No call holds a thread for the
// length of a cloud operation: a create returns as soon as the operation is accepted
// (phase Creating) and later calls to Get observe its progress.
//
// GetQuota reports the vCPU quota the cloud still holds for nodes of an instance type; a
// provider that keeps no quota says so (known = false) instead of failing.
//
// Status codes of the completions: INVALID_ARGUMENT (a bad claim; never retried),
// NOT_FOUND (Get of an unknown claim), UNAVAILABLE (try again). A cloud failure of a
// create is not an error status: it is a ProvisionedNode with phase Failed, the error
// class in `error_code`, `retryable`, and the cloud's message.
#pragma once

#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "kaito/v1/provisioner.pb.h"

namespace kaito::provisioner {

using NodeDone = absl::AnyInvocable<void(absl::StatusOr<v1::ProvisionedNode>) &&>;
// `gone`: nothing of the claim is left in the cloud.
using DeleteDone = absl::AnyInvocable<void(absl::StatusOr<bool> gone) &&>;
using ListDone = absl::AnyInvocable<void(absl::StatusOr<std::vector<v1::ProvisionedNode>>) &&>;
using QuotaDone = absl::AnyInvocable<void(absl::StatusOr<v1::QuotaHeadroom>) &&>;

class NodeProvider {
 public:
  virtual ~NodeProvider() = default;
  // Idempotent by claim name: a second create of the same claim reports the same node.
  virtual void CreateNode(const v1::CreateNodeRequest& request, NodeDone done) = 0;
  virtual void GetNode(const std::string& claim_name, NodeDone done) = 0;
  // Idempotent: deleting an unknown claim completes with gone = true.
  virtual void DeleteNode(const std::string& claim_name, DeleteDone done) = 0;
  virtual void ListNodes(ListDone done) = 0;
  virtual void GetQuota(const v1::GetQuotaRequest& request, QuotaDone done) {
    v1::QuotaHeadroom headroom;
    headroom.set_instance_type(request.instance_type());
    headroom.set_nodes(request.nodes());
    headroom.set_message("the " + Name() + " provider keeps no quota");
    std::move(done)(std::move(headroom));
  }
  // "simulated", "azure".
  virtual std::string Name() const = 0;
};

}  // namespace kaito::provisioner
