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

// The gRPC server series of every daemon, as the usual gRPC exporters name them (with our
// prefix): started, handled by code, handling time, and messages received and sent, each
// labelled grpc_service, grpc_method and grpc_type. Unary calls are recorded by the
// server's interceptor (common/grpc_server.h), streams by their reactors. A method's
// series are resolved once, so recording takes no lock and no label hashing.
class RpcMetrics {
 public:
  enum class Type { kUnary, kClientStream, kServerStream, kBidiStream };

  class Method {
   public:
    void Started() { started_->Increment(); }
    void Received() { received_->Increment(); }
    void Sent() { sent_->Increment(); }
    // Handled with `status` after `seconds`.
    void Record(const grpc::Status& status, double seconds);

   private:
    friend class RpcMetrics;
    prometheus::Family<prometheus::Counter>* handled_ = nullptr;
    std::map<std::string, std::string> labels_;
    prometheus::Counter* started_ = nullptr;
    prometheus::Counter* received_ = nullptr;
    prometheus::Counter* sent_ = nullptr;
    prometheus::Histogram* latency_ = nullptr;
    // One counter per gRPC status code, created on first use.
    std::array<std::atomic<prometheus::Counter*>, 17> by_code_{};
    absl::Mutex mu_;
  };

  explicit RpcMetrics(prometheus::Registry& registry);
  // The series of a method by its path ("/kaito.v1.WorkspaceService/CreateWorkspace"); the
  // pointer stays valid as long as this object.
  Method* ForMethod(const std::string& path, Type type);
  prometheus::Gauge& open_watches() { return *open_watches_; }

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  prometheus::Gauge* open_watches_;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Method>> methods_ ABSL_GUARDED_BY(mu_);
};

// `status` as gRPC sends it: same code; the message abbreviated to `kMaxErrorMessage`
// bytes as percent-encoded on the wire (`kMaxErrorMessageWithDetails` when it has
// payloads); its payloads, if any, as the error details (`ErrorDetails`:
// common/status_details.h), which gRPC sends in the `grpc-status-details-bin` trailer.
grpc::Status ToGrpcStatus(const absl::Status& status);

// The series of the stream `path`, or null when `metrics` is null.
inline RpcMetrics::Method* StreamMethod(RpcMetrics* metrics, const std::string& path,
                                        RpcMetrics::Type type) {
  return metrics ? metrics->ForMethod(path, type) : nullptr;
}

// Finishes a unary call (the server's interceptor records it). Cheap to copy into
// completion callbacks.
class UnaryCall {
 public:
  explicit UnaryCall(grpc::CallbackServerContext* ctx) : reactor_(ctx->DefaultReactor()) {}

  grpc::ServerUnaryReactor* reactor() const { return reactor_; }

  grpc::ServerUnaryReactor* Finish(const absl::Status& status) const {
    reactor_->Finish(ToGrpcStatus(status));
    return reactor_;
  }

 private:
  grpc::ServerUnaryReactor* reactor_;
};

}  // namespace kaito
