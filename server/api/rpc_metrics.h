// Prometheus series for every RPC a server handles, by method and status code.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace kaito::server {

// Counts and times every RPC by method and code. The per-method series are resolved
// once, so recording an RPC takes no lock and no label hashing.
class RpcMetrics {
 public:
  class Method {
   public:
    void Record(const grpc::Status& status, double seconds);

   private:
    friend class RpcMetrics;
    prometheus::Family<prometheus::Counter>* handled_ = nullptr;
    std::string name_;
    prometheus::Histogram* latency_ = nullptr;
    // One counter per gRPC status code, created on first use.
    std::array<std::atomic<prometheus::Counter*>, 17> by_code_{};
    absl::Mutex mu_;
  };

  explicit RpcMetrics(prometheus::Registry& registry);
  // The series of one method; the pointer stays valid as long as this object.
  Method* ForMethod(const std::string& name);
  prometheus::Gauge& open_watches() { return *open_watches_; }

 private:
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Gauge* open_watches_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Method>> methods_ ABSL_GUARDED_BY(mu_);
};

grpc::Status ToGrpcStatus(const absl::Status& status);

// The metrics of method `name`, or null when `metrics` is null.
inline RpcMetrics::Method* MethodOf(RpcMetrics* metrics, const char* name) {
  return metrics ? metrics->ForMethod(name) : nullptr;
}

}  // namespace kaito::server
