#include "common/rpc_metrics.h"

#include "common/field_errors.h"
#include "common/status_details.h"

namespace kaito {
namespace {

// gRPC percent-encodes a status message's bytes outside printable ASCII, and '%', three
// bytes each on the wire, and a client counts the encoded size against its limit.
size_t WireBytes(char c) {
  const auto b = static_cast<unsigned char>(c);
  return b < 0x20 || b > 0x7E || b == '%' ? 3 : 1;
}

// `message` abbreviated (`Abbreviate`) to at most `max` bytes once percent-encoded.
std::string AbbreviateForTrailer(absl::string_view message, size_t max) {
  size_t wire = 0;
  size_t keep = 0;
  while (keep < message.size() && wire + WireBytes(message[keep]) <= max) {
    wire += WireBytes(message[keep]);
    ++keep;
  }
  return keep == message.size() ? std::string(message) : Abbreviate(message, keep);
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  bool has_payloads = false;
  status.ForEachPayload([&](absl::string_view, const absl::Cord&) { has_payloads = true; });
  const std::string message = AbbreviateForTrailer(
      status.message(), has_payloads ? kMaxErrorMessageWithDetails : kMaxErrorMessage);
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message,
                      has_payloads ? ErrorDetails(status, message) : std::string());
}

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("kaito_grpc_server_started_total")
                   .Help("RPCs started on the server.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("kaito_grpc_server_handled_total")
                   .Help("RPCs completed on the server, by status code.")
                   .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("kaito_grpc_server_handling_seconds")
                   .Help("Time from the start of an RPC to its status: a unary call's "
                         "latency, a stream's lifetime.")
                   .Register(registry)),
      received_(prometheus::BuildCounter()
                    .Name("kaito_grpc_server_msg_received_total")
                    .Help("Messages received from clients.")
                    .Register(registry)),
      sent_(prometheus::BuildCounter()
                .Name("kaito_grpc_server_msg_sent_total")
                .Help("Messages sent to clients.")
                .Register(registry)) {
  open_watches_ = &prometheus::BuildGauge()
                       .Name("kaito_watch_streams_open")
                       .Help("Watch streams currently open.")
                       .Register(registry)
                       .Add({});
}

RpcMetrics::Method* RpcMetrics::ForMethod(const std::string& path, Type type) {
  absl::MutexLock lock(&mu_);
  auto& slot = methods_[path];
  if (!slot) {
    // "/kaito.v1.WorkspaceService/CreateWorkspace": service and method.
    std::string name = path;
    if (!name.empty() && name[0] == '/') name.erase(0, 1);
    const size_t slash = name.find('/');
    static const char* kTypes[] = {"unary", "client_stream", "server_stream", "bidi_stream"};
    slot = std::make_unique<Method>();
    slot->labels_ = {{"grpc_service", slash == std::string::npos ? "" : name.substr(0, slash)},
                     {"grpc_method", slash == std::string::npos ? name : name.substr(slash + 1)},
                     {"grpc_type", kTypes[static_cast<int>(type)]}};
    slot->handled_ = &handled_;
    slot->started_ = &started_.Add(slot->labels_);
    slot->received_ = &received_.Add(slot->labels_);
    slot->sent_ = &sent_.Add(slot->labels_);
    // Unary calls take milliseconds; streams live for minutes to days.
    slot->latency_ = &latency_.Add(
        slot->labels_,
        type == Type::kUnary
            ? prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                                      10}
            : prometheus::Histogram::BucketBoundaries{0.1, 1, 10, 60, 300, 900, 3600, 14400,
                                                      86400});
  }
  return slot.get();
}

void RpcMetrics::Method::Record(const grpc::Status& status, double seconds) {
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
  int code = static_cast<int>(status.error_code());
  if (code < 0 || code > 16) code = 2;  // UNKNOWN
  prometheus::Counter* counter = by_code_[code].load(std::memory_order_acquire);
  if (counter == nullptr) {
    absl::MutexLock lock(&mu_);
    counter = by_code_[code].load(std::memory_order_relaxed);
    if (counter == nullptr) {
      std::map<std::string, std::string> labels = labels_;
      labels["grpc_code"] = kCodes[code];
      counter = &handled_->Add(labels);
      by_code_[code].store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
  latency_->Observe(seconds);
}

}  // namespace kaito
