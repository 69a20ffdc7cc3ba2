#include "common/rpc_metrics.h"

#include "common/field_errors.h"

namespace kaito {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      Abbreviate(status.message(), kMaxErrorMessage));
}

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : handled_(prometheus::BuildCounter()
                   .Name("kaito_grpc_server_handled_total")
                   .Help("RPCs completed by the server, by method and status code.")
                   .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("kaito_grpc_server_handling_seconds")
                   .Help("Time from receiving a unary RPC to sending its reply.")
                   .Register(registry)) {
  open_watches_ = &prometheus::BuildGauge()
                       .Name("kaito_watch_streams_open")
                       .Help("Watch streams currently open.")
                       .Register(registry)
                       .Add({});
}

RpcMetrics::Method* RpcMetrics::ForMethod(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = methods_[name];
  if (!slot) {
    slot = std::make_unique<Method>();
    slot->name_ = name;
    slot->handled_ = &handled_;
    slot->latency_ = &latency_.Add(
        {{"method", name}},
        prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  }
  return slot.get();
}

void RpcMetrics::Method::Record(const grpc::Status& status, double seconds) {
  static const char* kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int code = static_cast<int>(status.error_code());
  if (code < 0 || code > 16) code = 2;  // UNKNOWN
  prometheus::Counter* counter = by_code_[code].load(std::memory_order_acquire);
  if (counter == nullptr) {
    absl::MutexLock lock(&mu_);
    counter = by_code_[code].load(std::memory_order_relaxed);
    if (counter == nullptr) {
      counter = &handled_->Add({{"method", name_}, {"code", kCodes[code]}});
      by_code_[code].store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
  latency_->Observe(seconds);
}

}  // namespace kaito
