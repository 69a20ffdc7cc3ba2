// A NodeProvider that times every node operation it passes through, for
// `kaito_provisioner_operation_duration_seconds{operation,result}` and
// `kaito_provisioner_operations_in_flight{operation}`: a create from the first CreateNode of a
// claim to the first answer (Create, Get or List) that shows it Running (succeeded) or Failed
// (failed); a delete from the first DeleteNode to the answer that says it is gone. Durations
// are as the provider's callers see them, so their resolution is the caller's polling
// interval. Any provider: the decorator holds no cloud logic.
#pragma once

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "provisioner/provider/node_provider.h"

namespace kaito::provisioner {

class TimedProvider : public NodeProvider {
 public:
  // `inner`, `clock` and `registry` outlive it.
  TimedProvider(NodeProvider* inner, Clock* clock, prometheus::Registry& registry);

  void CreateNode(const v1::CreateNodeRequest& request, NodeDone done) override;
  void GetNode(const std::string& claim_name, NodeDone done) override;
  void DeleteNode(const std::string& claim_name, DeleteDone done) override;
  void ListNodes(ListDone done) override;
  void GetQuota(const v1::GetQuotaRequest& request, QuotaDone done) override;
  std::string Name() const override { return inner_->Name(); }

 private:
  // Ends the claim's create when `node` shows where it went.
  void Observe(const v1::ProvisionedNode& node);
  void UpdateGauges() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  NodeProvider* const inner_;
  Clock* const clock_;
  prometheus::Histogram* create_succeeded_;
  prometheus::Histogram* create_failed_;
  prometheus::Histogram* delete_done_;
  prometheus::Gauge* creates_in_flight_;
  prometheus::Gauge* deletes_in_flight_;
  absl::Mutex mu_;
  // Claim -> when its create (or delete) began (monotonic).
  std::map<std::string, absl::Duration> creating_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Duration> deleting_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::provisioner
