#include "provisioner/provisioner_metrics.h"

namespace kaito::provisioner {
namespace {

const char* CodeName(grpc::StatusCode code) {
  static const char* kCodes[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  return i >= 0 && i <= 16 ? kCodes[i] : "UNKNOWN";
}

}  // namespace

ProvisionerMetrics::ProvisionerMetrics(prometheus::Registry& registry)
    : handled_(prometheus::BuildCounter()
                   .Name("kaito_grpc_server_handled_total")
                   .Help("RPCs completed by the server, by method and status code.")
                   .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("kaito_grpc_server_handling_seconds")
                   .Help("Time from receiving a unary RPC to sending its reply.")
                   .Register(registry)) {}

void ProvisionerMetrics::Record(const std::string& method, const grpc::Status& status,
                                double seconds) {
  handled_.Add({{"method", method}, {"code", CodeName(status.error_code())}}).Increment();
  latency_
      .Add({{"method", method}},
           prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})
      .Observe(seconds);
}

}  // namespace kaito::provisioner
