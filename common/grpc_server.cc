#include "common/grpc_server.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/resource_quota.h>

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace kaito {
namespace {

// "/kaito.v1.WorkspaceService/CreateWorkspace" → "kaito.v1.WorkspaceService.CreateWorkspace".
std::string FullMethodName(const char* path) {
  std::string name = path ? path : "";
  if (!name.empty() && name[0] == '/') name.erase(0, 1);
  return absl::StrReplaceAll(name, {{"/", "."}});
}

// Records every unary call (started, messages, handled by code, latency) and turns a
// request that does not decode into INVALID_ARGUMENT with a message that says so (gRPC's
// own answer is a bare UNIMPLEMENTED).
class UnaryObserver : public grpc::experimental::Interceptor {
 public:
  UnaryObserver(grpc::experimental::ServerRpcInfo* info, RpcMetrics::Method* method)
      : info_(info), method_(method), start_(absl::Now()) {
    if (method_) method_->Started();
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    // The request is decoded before the handler runs; a null message here means it did not
    // decode.
    if (methods->QueryInterceptionHookPoint(Hook::POST_RECV_MESSAGE)) {
      if (methods->GetRecvMessage() == nullptr) {
        undecodable_ = true;
      } else if (method_) {
        method_->Received();
      }
    }
    if (method_ && methods->QueryInterceptionHookPoint(Hook::PRE_SEND_MESSAGE)) method_->Sent();
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_STATUS)) {
      grpc::Status sent = methods->GetSendStatus();
      if (undecodable_ && sent.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          sent.error_message().empty()) {
        sent = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, Message());
        methods->ModifySendStatus(sent);
      }
      if (method_) method_->Record(sent, absl::ToDoubleSeconds(absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  std::string Message() const {
    std::string type = "the request message";
    if (const auto* method = google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
            FullMethodName(info_->method()))) {
      type = method->input_type()->full_name();
    }
    return "request cannot be decoded as " + type +
           ": the message is truncated or malformed, a string field is not valid UTF-8, or "
           "it nests too deeply";
  }

  grpc::experimental::ServerRpcInfo* const info_;
  RpcMetrics::Method* const method_;
  const absl::Time start_;
  bool undecodable_ = false;
};

class UnaryObserverFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit UnaryObserverFactory(RpcMetrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    // Unary calls only: an interceptor sits on every message of its call, and on the
    // watch and agent streams that cost shows in fan-out (kaito-bench api's watch
    // phase falls behind its updater). Streams record their own metrics; a stream whose
    // first message does not decode keeps gRPC's UNIMPLEMENTED.
    if (info->type() != grpc::experimental::ServerRpcInfo::Type::UNARY) return nullptr;
    return new UnaryObserver(info, ForMethod(info->method()));
  }

 private:
  // The method's series, by the address of its path: gRPC's generated code hands every call
  // of a method the same string, so a call costs a shared-lock hash lookup, not a string.
  RpcMetrics::Method* ForMethod(const char* path) {
    if (metrics_ == nullptr || path == nullptr) return nullptr;
    {
      absl::ReaderMutexLock lock(&mu_);
      if (auto it = by_path_.find(path); it != by_path_.end()) return it->second;
    }
    RpcMetrics::Method* method = metrics_->ForMethod(path, RpcMetrics::Type::kUnary);
    absl::MutexLock lock(&mu_);
    by_path_.emplace(path, method);
    return method;
  }

  RpcMetrics* metrics_;
  absl::Mutex mu_;
  absl::flat_hash_map<const char*, RpcMetrics::Method*> by_path_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> UnaryCallInterceptor(
    RpcMetrics* metrics) {
  return std::make_unique<UnaryObserverFactory>(metrics);
}

void ApplyServerDefaults(grpc::ServerBuilder& builder, RpcMetrics* metrics,
                         const GrpcServerLimits& limits) {
  // The port is ours alone: without this, gRPC's SO_REUSEPORT lets a second server bind
  // the same address and take half of the connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(limits.max_receive_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_streams_per_connection);
  if (limits.transport_memory_bytes > 0) {
    // The quota must outlive the server; one per process is what a daemon needs.
    static grpc::ResourceQuota* quota = new grpc::ResourceQuota("kaito-transport");
    quota->Resize(limits.transport_memory_bytes);
    builder.SetResourceQuota(*quota);
  }
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(UnaryCallInterceptor(metrics));
  builder.experimental().SetInterceptorCreators(std::move(creators));
}

}  // namespace kaito
