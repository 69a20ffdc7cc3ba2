// Prometheus series of kaito-provisioner: every RPC by method and status code, and its
// latency. Rates are those of node creates and deletes (a few per second at most), so
// recording resolves the labelled series on each call.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

namespace kaito::provisioner {

class ProvisionerMetrics {
 public:
  explicit ProvisionerMetrics(prometheus::Registry& registry);
  // Thread-safe.
  void Record(const std::string& method, const grpc::Status& status, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& latency_;
};

}  // namespace kaito::provisioner
