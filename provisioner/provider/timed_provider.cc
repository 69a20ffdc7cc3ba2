#include "provisioner/provider/timed_provider.h"

#include <utility>

namespace kaito::provisioner {
namespace {

// 1 s to 1 h: an AKS agent pool takes minutes; a simulated one milliseconds to seconds.
const prometheus::Histogram::BucketBoundaries kOperationBuckets = {
    0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600};

}  // namespace

TimedProvider::TimedProvider(NodeProvider* inner, Clock* clock, prometheus::Registry& registry)
    : inner_(inner), clock_(clock) {
  auto& durations = prometheus::BuildHistogram()
                        .Name("kaito_provisioner_operation_duration_seconds")
                        .Help(
                            "Node operations from their first call to their end, as the "
                            "provider's callers see it, by operation and result.")
                        .Register(registry);
  create_succeeded_ =
      &durations.Add({{"operation", "create"}, {"result", "succeeded"}}, kOperationBuckets);
  create_failed_ =
      &durations.Add({{"operation", "create"}, {"result", "failed"}}, kOperationBuckets);
  delete_done_ =
      &durations.Add({{"operation", "delete"}, {"result", "succeeded"}}, kOperationBuckets);
  auto& in_flight = prometheus::BuildGauge()
                        .Name("kaito_provisioner_operations_in_flight")
                        .Help("Node creates and deletes begun and not yet seen to end.")
                        .Register(registry);
  creates_in_flight_ = &in_flight.Add({{"operation", "create"}});
  deletes_in_flight_ = &in_flight.Add({{"operation", "delete"}});
}

void TimedProvider::UpdateGauges() {
  creates_in_flight_->Set(static_cast<double>(creating_.size()));
  deletes_in_flight_->Set(static_cast<double>(deleting_.size()));
}

void TimedProvider::Observe(const v1::ProvisionedNode& node) {
  const bool running = node.phase() == "Running";
  const bool failed = node.phase() == "Failed";
  if (!running && !failed) return;
  absl::MutexLock lock(&mu_);
  auto it = creating_.find(node.claim_name());
  if (it == creating_.end()) return;
  const double seconds = absl::ToDoubleSeconds(clock_->Monotonic() - it->second);
  (running ? create_succeeded_ : create_failed_)->Observe(seconds);
  creating_.erase(it);
  UpdateGauges();
}

void TimedProvider::CreateNode(const v1::CreateNodeRequest& request, NodeDone done) {
  {
    absl::MutexLock lock(&mu_);
    // A create called again (idempotent) keeps its first start.
    creating_.emplace(request.claim_name(), clock_->Monotonic());
    UpdateGauges();
  }
  inner_->CreateNode(request, [this, claim = request.claim_name(), done = std::move(done)](
                                  absl::StatusOr<v1::ProvisionedNode> node) mutable {
    if (node.ok()) {
      Observe(*node);
    } else if (absl::IsInvalidArgument(node.status())) {
      // Refused outright: there is no operation to time.
      absl::MutexLock lock(&mu_);
      creating_.erase(claim);
      UpdateGauges();
    }
    std::move(done)(std::move(node));
  });
}

void TimedProvider::GetNode(const std::string& claim_name, NodeDone done) {
  inner_->GetNode(claim_name,
                  [this, done = std::move(done)](absl::StatusOr<v1::ProvisionedNode> node) mutable {
                    if (node.ok()) Observe(*node);
                    std::move(done)(std::move(node));
                  });
}

void TimedProvider::DeleteNode(const std::string& claim_name, DeleteDone done) {
  {
    absl::MutexLock lock(&mu_);
    deleting_.emplace(claim_name, clock_->Monotonic());
    // A create that is deleted is no longer in flight as a create.
    creating_.erase(claim_name);
    UpdateGauges();
  }
  inner_->DeleteNode(
      claim_name, [this, claim_name, done = std::move(done)](absl::StatusOr<bool> gone) mutable {
        if (gone.ok() && *gone) {
          absl::MutexLock lock(&mu_);
          auto it = deleting_.find(claim_name);
          if (it != deleting_.end()) {
            delete_done_->Observe(absl::ToDoubleSeconds(clock_->Monotonic() - it->second));
            deleting_.erase(it);
            UpdateGauges();
          }
        }
        std::move(done)(std::move(gone));
      });
}

void TimedProvider::ListNodes(ListDone done) {
  inner_->ListNodes([this, done = std::move(done)](
                        absl::StatusOr<std::vector<v1::ProvisionedNode>> nodes) mutable {
    if (nodes.ok()) {
      for (const v1::ProvisionedNode& n : *nodes) Observe(n);
    }
    std::move(done)(std::move(nodes));
  });
}

void TimedProvider::GetQuota(const v1::GetQuotaRequest& request, QuotaDone done) {
  inner_->GetQuota(request, std::move(done));
}

}  // namespace kaito::provisioner
