// The handlers of a plain stored kind (ConfigMap, Secret, and the controller's kinds):
// Create, Get, List, Update, Delete over its registry, written once. Each gRPC service
// is a thin class whose methods forward here.
#pragma once

#include <string>

#include "common/rpc_metrics.h"
#include "server/api/unary_call.h"
#include "server/registry/object_registry.h"

namespace kaito::server {

// `T` is the kind, `WriteRequest` its create/update request (the object plus dry_run),
// `ListResponse` has items, next_page_token and resource_version.
template <typename T, typename WriteRequest, typename ListResponse>
class ObjectHandlers {
 public:
  using ObjectOf = const T& (WriteRequest::*)() const;

  ObjectHandlers(ObjectRegistry<T>* registry, Authorizer* auth, ObjectOf object_of)
      : registry_(registry), auth_(auth), object_of_(object_of) {}

  ServerUnaryReactor* Create(CallbackServerContext* ctx, const WriteRequest* request,
                             T* response) {
    UnaryCall call(ctx);
    if (!Permitted(auth_, ctx, call, WriteAccess(Verb::kCreate, (request->*object_of_)()))) {
      return call.reactor();
    }
    return Write<T>(
        call, response, [](T& r, WriteResult<T>& w) { r = std::move(w.object); },
        [&](WriteDone<T> done) {
          registry_->Create((request->*object_of_)(), request->dry_run(), std::move(done));
        });
  }

  ServerUnaryReactor* Get(CallbackServerContext* ctx, const v1::ObjectKey* request, T* response) {
    UnaryCall call(ctx);
    if (!Permitted(auth_, ctx, call,
                   {Verb::kGet, Resource(), ReadNamespace(request->namespace_()), request->name()})) {
      return call.reactor();
    }
    return GetInto(call, registry_, request->namespace_(), request->name(),
                   response);
  }

  ServerUnaryReactor* List(CallbackServerContext* ctx, const v1::ListRequest* request,
                           ListResponse* response) {
    UnaryCall call(ctx);
    if (!Permitted(auth_, ctx, call, {Verb::kList, Resource(), request->namespace_(), ""})) {
      return call.reactor();
    }
    return ListInto(call, registry_, request->namespace_(),
                    request->label_selector(), request->page_size(), request->page_token(),
                    response);
  }

  ServerUnaryReactor* Update(CallbackServerContext* ctx, const WriteRequest* request,
                             T* response) {
    UnaryCall call(ctx);
    if (!Permitted(auth_, ctx, call, WriteAccess(Verb::kUpdate, (request->*object_of_)()))) {
      return call.reactor();
    }
    return Write<T>(
        call, response, [](T& r, WriteResult<T>& w) { r = std::move(w.object); },
        [&](WriteDone<T> done) {
          registry_->Update((request->*object_of_)(), request->dry_run(), std::move(done));
        });
  }

  ServerUnaryReactor* Delete(CallbackServerContext* ctx, const v1::DeleteRequest* request,
                             v1::DeleteResponse* response) {
    UnaryCall call(ctx);
    if (!Permitted(auth_, ctx, call,
                   {Verb::kDelete, Resource(), ReadNamespace(request->namespace_()),
                    request->name()})) {
      return call.reactor();
    }
    return DeleteInto(call, registry_, request, response);
  }

 private:
  const std::string& Resource() const { return registry_->policy().resource; }
  Access WriteAccess(Verb verb, const T& object) const {
    return {verb, Resource(), WriteNamespace(object.metadata(), registry_->policy().cluster_scoped),
            object.metadata().name()};
  }

  ObjectRegistry<T>* const registry_;
  Authorizer* const auth_;
  const ObjectOf object_of_;
  // Resolved once, so that recording an RPC is lock-free.
};

}  // namespace kaito::server
