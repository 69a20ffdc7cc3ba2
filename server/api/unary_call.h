// The shared pieces of every unary handler: finish exactly once with the status mapped
// to gRPC and recorded in the metrics, and the registry-backed Get, List, Write and
// Delete handlers that the object services are made of.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "absl/time/clock.h"
#include "kaito/v1/config.pb.h"
#include "common/rpc_metrics.h"
#include "server/auth/authorizer.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Authenticates and authorizes a call (`auth` null: allowed); a refused call is finished
// here (UNAUTHENTICATED or PERMISSION_DENIED, recorded) and false returned.
inline bool Permitted(Authorizer* auth, CallbackServerContext* ctx, const UnaryCall& call,
                      const Access& access) {
  if (auth == nullptr) return true;
  auto who = auth->Check(*ctx, access);
  if (who.ok()) return true;
  call.Finish(who.status());
  return false;
}

// For handlers that finish on their own (no UnaryCall): null when the call may go on,
// else the reactor of the finished, refused call.
inline ServerUnaryReactor* Refused(Authorizer* auth, CallbackServerContext* ctx,
                                   const Access& access) {
  if (auth == nullptr) return nullptr;
  auto who = auth->Check(*ctx, access);
  if (who.ok()) return nullptr;
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(who.status()));
  return reactor;
}

// The namespace a write lands in: the object's, "default" when it has none.
inline std::string WriteNamespace(const v1::ObjectMeta& meta, bool cluster_scoped) {
  if (cluster_scoped) return "";
  return meta.namespace_().empty() ? std::string(kDefaultNamespace) : meta.namespace_();
}

// The namespace of a read: "default" when none is named for a get.
inline std::string ReadNamespace(const std::string& ns) {
  return ns.empty() ? std::string(kDefaultNamespace) : ns;
}

template <typename T, typename Resp, typename Fill>
ServerUnaryReactor* Write(UnaryCall call, Resp* response, Fill fill,
                          const std::function<void(WriteDone<T>)>& start) {
  start([call, response, fill](absl::StatusOr<WriteResult<T>> result) mutable {
    if (result.ok()) fill(*response, *result);
    call.Finish(result.status());
  });
  return call.reactor();
}

template <typename T, typename Resp>
ServerUnaryReactor* ListInto(UnaryCall call, ObjectRegistry<T>* registry,
                             const std::string& ns, const std::string& selector, int32_t page_size,
                             const std::string& token, Resp* response) {
  auto result = registry->List(ns, selector, page_size, token);
  if (result.ok()) {
    for (T& item : result->items) *response->add_items() = std::move(item);
    response->set_next_page_token(result->next_page_token);
    response->set_resource_version(std::to_string(result->revision));
  }
  return call.Finish(result.status());
}

template <typename T>
ServerUnaryReactor* GetInto(UnaryCall call, ObjectRegistry<T>* registry, const std::string& ns,
                            const std::string& name, T* response) {
  auto result = registry->Get(ns, name);
  if (result.ok()) *response = std::move(*result);
  return call.Finish(result.status());
}

template <typename T>
ServerUnaryReactor* DeleteInto(UnaryCall call, ObjectRegistry<T>* registry,
                               const v1::DeleteRequest* request, v1::DeleteResponse* response) {
  return Write<T>(
      call, response, [](v1::DeleteResponse& r, WriteResult<T>& w) { r.set_deleted(w.deleted); },
      [&](WriteDone<T> done) {
        registry->Delete(request->namespace_(), request->name(), request->resource_version(),
                         std::move(done));
      });
}

}  // namespace kaito::server
