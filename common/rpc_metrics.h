// Prometheus series for every RPC a server handles, by method and status code, shared by
// every daemon that serves gRPC (same names everywhere), and the absl-to-gRPC status map.
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
#include "absl/time/clock.h"

namespace kaito {

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

// `status` as gRPC sends it: same code; the message abbreviated to `kMaxErrorMessage`
// bytes as percent-encoded on the wire (`kMaxErrorMessageWithDetails` when it has
// payloads); its payloads, if any, as the error details (`ErrorDetails`:
// common/status_details.h), which gRPC sends in the `grpc-status-details-bin` trailer.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The metrics of method `name`, or null when `metrics` is null.
inline RpcMetrics::Method* MethodOf(RpcMetrics* metrics, const char* name) {
  return metrics ? metrics->ForMethod(name) : nullptr;
}

// Finishes a unary call and records it. Cheap to copy into completion callbacks.
class UnaryCall {
 public:
  UnaryCall(grpc::CallbackServerContext* ctx, RpcMetrics::Method* method)
      : reactor_(ctx->DefaultReactor()), method_(method), start_(absl::Now()) {}

  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

  grpc::ServerUnaryReactor* Finish(const absl::Status& status) const {
    grpc::Status g = ToGrpcStatus(status);
    if (method_) method_->Record(g, absl::ToDoubleSeconds(absl::Now() - start_));
    reactor_->Finish(g);
    return reactor_;
  }

 private:
  grpc::ServerUnaryReactor* reactor_;
  RpcMetrics::Method* method_;
  absl::Time start_;
};

}  // namespace kaito
