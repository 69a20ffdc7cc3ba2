#include "server/agents/node_service.h"

#include "server/api/stream_writer.h"
#include "server/api/unary_call.h"

namespace kaito::server {
namespace {

// One agent's stream. Reads one message at a time into the session; writes go through
// the shared StreamWriter (one in flight, Finish exactly once), and a newer desired set
// replaces an older one not yet sent (each is the full state). The reactor deletes itself
// in OnDone.
class ConnectReactor : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  // `node`: the node the caller may speak for (empty: any); `refused` not OK ends the
  // stream at once with it.
  ConnectReactor(const AgentSessionDeps* deps, RpcMetrics::Method* method, std::string peer,
                 std::string node, const absl::Status& refused)
      : method_(method),
        writer_(
            &mu_, [this](const v1::ServerMessage* m) { StartWrite(m); },
            [this](const grpc::Status& s) { Finish(s); },
            [](v1::ServerMessage item, v1::ServerMessage* m) { *m = std::move(item); }, method),
        session_(
            deps, [this](v1::ServerMessage m) { Enqueue(std::move(m)); },
            [this](const absl::Status& s) {
              RequestFinish(
                  grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message())));
            },
            std::move(peer)) {
    if (!refused.ok()) {
      RequestFinish(ToGrpcStatus(refused));
      return;
    }
    session_.RestrictToNode(std::move(node));
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side or went away.
      RequestFinish(grpc::Status::OK);
      return;
    }
    if (method_) method_->Received();
    session_.OnMessage(in_);
    absl::MutexLock lock(&mu_);
    if (!writer_.finishing()) StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writer_.OnWriteDoneLocked(ok);
  }

  void OnCancel() override { RequestFinish(grpc::Status::CANCELLED); }

  void OnDone() override {
    session_.OnStreamEnd();
    delete this;
  }

 private:
  void Enqueue(v1::ServerMessage message) {
    absl::MutexLock lock(&mu_);
    if (message.has_desired()) {
      writer_.DropQueuedLocked([](const v1::ServerMessage& m) { return m.has_desired(); });
    }
    writer_.EnqueueLocked(std::move(message));
  }

  void RequestFinish(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    writer_.RequestFinishLocked(status);
  }

  RpcMetrics::Method* const method_;
  absl::Mutex mu_;
  StreamWriter<v1::ServerMessage, v1::ServerMessage> writer_;
  // After the writer: the session's callbacks use it.
  AgentSession session_;
  v1::AgentMessage in_;
};

}  // namespace

NodeGrpcService::NodeGrpcService(const AgentSessionDeps* deps, RpcMetrics* metrics)
    : deps_(deps),
      metrics_(metrics),
      connect_(
          StreamMethod(metrics, "/kaito.v1.NodeService/Connect", RpcMetrics::Type::kBidiStream)),
      watch_events_(StreamMethod(metrics, "/kaito.v1.NodeService/WatchEvents",
                                 RpcMetrics::Type::kServerStream)) {}

grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* NodeGrpcService::Connect(
    grpc::CallbackServerContext* ctx) {
  // An agent's certificate names its node, and the session may speak only for that one;
  // other identities need the right to update every node (admin).
  std::string node;
  absl::Status refused = absl::OkStatus();
  if (deps_->auth) {
    auto who = deps_->auth->Authenticate(*ctx);
    if (!who.ok()) {
      refused = who.status();
    } else if (!who->node.empty()) {
      node = who->node;
    } else {
      refused = deps_->auth->Authorize(*who, {Verb::kUpdate, "nodes", "", ""});
    }
  }
  return new ConnectReactor(deps_, connect_, ctx->peer(), std::move(node), refused);
}

ServerUnaryReactor* NodeGrpcService::ListNodes(CallbackServerContext* ctx,
                                               const v1::ListRequest* request,
                                               v1::ListNodesResponse* response) {
  UnaryCall call(ctx);
  if (!Permitted(deps_->auth, ctx, call, {Verb::kList, "nodes", "", ""})) return call.reactor();
  return ListInto(call, deps_->objects.nodes, "", request->label_selector(), request->page_size(),
                  request->page_token(), response);
}

ServerUnaryReactor* NodeGrpcService::GetNode(CallbackServerContext* ctx,
                                             const v1::ObjectKey* request, v1::Node* response) {
  UnaryCall call(ctx);
  if (!Permitted(deps_->auth, ctx, call, {Verb::kGet, "nodes", "", request->name()})) {
    return call.reactor();
  }
  return GetInto(call, deps_->objects.nodes, "", request->name(), response);
}

ServerUnaryReactor* NodeGrpcService::ListNodeClaims(CallbackServerContext* ctx,
                                                    const v1::ListRequest* request,
                                                    v1::ListNodeClaimsResponse* response) {
  UnaryCall call(ctx);
  if (!Permitted(deps_->auth, ctx, call, {Verb::kList, "nodeclaims", "", ""})) {
    return call.reactor();
  }
  return ListInto(call, deps_->objects.nodeclaims, "", request->label_selector(),
                  request->page_size(), request->page_token(), response);
}

ServerUnaryReactor* NodeGrpcService::GetNodeClaim(CallbackServerContext* ctx,
                                                  const v1::ObjectKey* request,
                                                  v1::NodeClaim* response) {
  UnaryCall call(ctx);
  if (!Permitted(deps_->auth, ctx, call, {Verb::kGet, "nodeclaims", "", request->name()})) {
    return call.reactor();
  }
  return GetInto(call, deps_->objects.nodeclaims, "", request->name(), response);
}

ServerUnaryReactor* NodeGrpcService::ListWorkloads(CallbackServerContext* ctx,
                                                   const v1::ListRequest* request,
                                                   v1::ListWorkloadsResponse* response) {
  UnaryCall call(ctx);
  if (!Permitted(deps_->auth, ctx, call, {Verb::kList, "workloads", request->namespace_(), ""})) {
    return call.reactor();
  }
  return ListInto(call, deps_->objects.workloads, request->namespace_(), request->label_selector(),
                  request->page_size(), request->page_token(), response);
}

ServerUnaryReactor* NodeGrpcService::ListEvents(CallbackServerContext* ctx,
                                                const v1::ListEventsRequest* request,
                                                v1::ListEventsResponse* response) {
  UnaryCall call(ctx);
  if (!Permitted(deps_->auth, ctx, call, {Verb::kList, "events", request->namespace_(), ""})) {
    return call.reactor();
  }
  auto events = deps_->objects.events->ListShared(request->namespace_(), [&](const v1::Event& e) {
    const auto& ref = e.involved_object();
    return (request->involved_kind().empty() || ref.kind() == request->involved_kind()) &&
           (request->involved_name().empty() || ref.name() == request->involved_name());
  });
  std::vector<const v1::Event*> sorted;
  for (const auto& e : events) sorted.push_back(e.get());
  std::stable_sort(sorted.begin(), sorted.end(), [](const v1::Event* a, const v1::Event* b) {
    const auto& x = a->last_timestamp();
    const auto& y = b->last_timestamp();
    return std::make_pair(x.seconds(), x.nanos()) < std::make_pair(y.seconds(), y.nanos());
  });
  for (const v1::Event* e : sorted) *response->add_items() = *e;
  return call.Finish(absl::OkStatus());
}

grpc::ServerWriteReactor<v1::EventWatchEvent>* NodeGrpcService::WatchEvents(
    CallbackServerContext* ctx, const v1::WatchEventsRequest* request) {
  absl::Status allowed = absl::OkStatus();
  if (deps_->auth) {
    allowed =
        deps_->auth->Check(*ctx, {Verb::kWatch, "events", request->namespace_(), request->name()})
            .status();
  }
  return new WatchReactor<v1::Event, v1::EventWatchEvent, v1::WatchEventsRequest>(
      deps_->objects.events, metrics_, watch_events_, watch_limits_, watch_quota_, ctx, *request,
      allowed);
}

}  // namespace kaito::server
