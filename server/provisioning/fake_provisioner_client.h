// A ProvisionerClient for controller tests: records every call, answers from a table the
// test controls, completes inline (on the caller's thread) or when the test says so.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "server/provisioning/provisioner_client.h"

namespace kaito::server {

class FakeProvisionerClient : public ProvisionerClient {
 public:
  // The reply to the next CreateNode/GetNode of `claim` (phase Creating until set).
  void SetNode(const std::string& claim, v1::ProvisionedNode node) {
    absl::MutexLock lock(&mu_);
    node.set_claim_name(claim);
    nodes_[claim] = std::move(node);
  }

  void CreateNode(const v1::CreateNodeRequest& request, provisioner::NodeDone done) override {
    v1::ProvisionedNode reply;
    {
      absl::MutexLock lock(&mu_);
      creates_.push_back(request);
      auto it = nodes_.find(request.claim_name());
      if (it == nodes_.end()) {
        v1::ProvisionedNode creating;
        creating.set_claim_name(request.claim_name());
        creating.set_phase("Creating");
        creating.set_instance_type(request.spec().instance_type());
        it = nodes_.emplace(request.claim_name(), creating).first;
      }
      reply = it->second;
    }
    std::move(done)(reply);
  }

  void GetNode(const std::string& claim, provisioner::NodeDone done) override {
    absl::StatusOr<v1::ProvisionedNode> reply = absl::NotFoundError(claim);
    {
      absl::MutexLock lock(&mu_);
      ++gets_;
      if (auto it = nodes_.find(claim); it != nodes_.end()) reply = it->second;
    }
    std::move(done)(std::move(reply));
  }

  void DeleteNode(const std::string& claim, provisioner::DeleteDone done) override {
    {
      absl::MutexLock lock(&mu_);
      deletes_.push_back(claim);
      nodes_.erase(claim);
    }
    std::move(done)(true);
  }

  void ListNodes(provisioner::ListDone done) override {
    std::vector<v1::ProvisionedNode> out;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [k, v] : nodes_) out.push_back(v);
    }
    std::move(done)(std::move(out));
  }

  std::string Name() const override { return "fake"; }

  std::vector<v1::CreateNodeRequest> creates() {
    absl::MutexLock lock(&mu_);
    return creates_;
  }
  std::vector<std::string> deletes() {
    absl::MutexLock lock(&mu_);
    return deletes_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, v1::ProvisionedNode> nodes_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::CreateNodeRequest> creates_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> deletes_ ABSL_GUARDED_BY(mu_);
  int gets_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace kaito::server
