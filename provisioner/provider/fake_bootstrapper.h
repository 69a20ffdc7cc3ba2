// A `NodeBootstrapper` for tests: records every call, keeps the set of running nodes,
// and fails `StartNode` with `start_error` when one is set. Thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "provisioner/provider/node_bootstrapper.h"

namespace kaito::provisioner {

class FakeBootstrapper : public NodeBootstrapper {
 public:
  absl::Status StartNode(const BootstrapSpec& spec) override {
    absl::MutexLock lock(&mu_);
    started_.push_back(spec);
    if (!start_error_.ok()) return start_error_;
    running_[spec.node_name] = spec;
    return absl::OkStatus();
  }

  void StopNode(const std::string& node_name) override {
    absl::MutexLock lock(&mu_);
    stopped_.push_back(node_name);
    running_.erase(node_name);
  }

  // Every `StartNode` call, in order (including those that failed).
  std::vector<BootstrapSpec> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  // Every `StopNode` call, in order.
  std::vector<std::string> stopped() {
    absl::MutexLock lock(&mu_);
    return stopped_;
  }
  // The nodes started and not stopped since.
  std::map<std::string, BootstrapSpec> running() {
    absl::MutexLock lock(&mu_);
    return running_;
  }
  void set_start_error(absl::Status error) {
    absl::MutexLock lock(&mu_);
    start_error_ = std::move(error);
  }

 private:
  absl::Mutex mu_;
  std::vector<BootstrapSpec> started_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> stopped_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, BootstrapSpec> running_ ABSL_GUARDED_BY(mu_);
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kaito::provisioner
