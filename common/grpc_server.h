// What every daemon that serves gRPC sets on its server, in one place: the port is its
// own, requests are bounded in size before they are buffered, streams per connection are
// bounded, and a unary request that cannot be decoded gets a clear INVALID_ARGUMENT
// (gRPC's callback API answers it with UNIMPLEMENTED and no message) and is counted.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "common/limits.h"
#include "common/rpc_metrics.h"

namespace kaito {

struct GrpcServerLimits {
  // The largest request gRPC accepts; a larger one is refused (RESOURCE_EXHAUSTED) from
  // its length prefix, before its bytes are buffered.
  int max_receive_bytes = static_cast<int>(kMaxRequestBytes);
  // HTTP/2 streams one connection may have open at once (unary calls and streams); more
  // wait in the client. Above the servers' own per-connection stream caps, so that those
  // answer with a reason rather than leaving the client waiting.
  int max_streams_per_connection = 2000;
  // Memory gRPC's transports may hold (read buffers, messages being received), in bytes;
  // 0 = no bound. Over it, gRPC cancels streams ("Buffers full") rather than grow.
  size_t transport_memory_bytes = 0;
};

// Configures `builder` as above; `metrics` (may be null) records every unary call.
void ApplyServerDefaults(grpc::ServerBuilder& builder, RpcMetrics* metrics,
                         const GrpcServerLimits& limits = {});

// The interceptor that records unary calls in `metrics` (may be null) and turns a failed
// request decode into INVALID_ARGUMENT. Exposed for tests; ApplyServerDefaults installs it.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> UnaryCallInterceptor(
    RpcMetrics* metrics);

}  // namespace kaito
