#include "server/agents/node_service.h"

#include <deque>
#include <optional>

#include "server/api/unary_call.h"

namespace kaito::server {
namespace {

// One agent's stream. Reads one message at a time into the session; writes are queued,
// one in flight, and a newer desired set replaces an older one not yet sent (each is
// the full state). Finish is called exactly once, never with a write in flight; the
// reactor deletes itself in OnDone.
class ConnectReactor : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage> {
 public:
  ConnectReactor(const AgentSessionDeps* deps, std::string peer)
      : session_(
            deps, [this](v1::ServerMessage m) { Enqueue(std::move(m)); },
            [this](const absl::Status& s) {
              RequestFinish(grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                                         std::string(s.message())));
            },
            std::move(peer)) {
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The agent closed its side or went away.
      RequestFinish(grpc::Status::OK);
      return;
    }
    session_.OnMessage(in_);
    absl::MutexLock lock(&mu_);
    if (!finish_status_) StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) RequestFinishLocked(grpc::Status::CANCELLED);
    if (finish_status_) {
      FinishLocked();
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override { RequestFinish(grpc::Status::CANCELLED); }

  void OnDone() override {
    session_.OnStreamEnd();
    delete this;
  }

 private:
  void Enqueue(v1::ServerMessage message) {
    absl::MutexLock lock(&mu_);
    if (finish_status_) return;
    if (message.has_desired()) {
      for (auto it = queue_.begin(); it != queue_.end();) {
        it = it->has_desired() ? queue_.erase(it) : it + 1;
      }
    }
    queue_.push_back(std::move(message));
    if (!writing_) WriteNextLocked();
  }

  void RequestFinish(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(status);
  }

  void RequestFinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_status_) return;
    finish_status_ = status;
    queue_.clear();
    if (!writing_) FinishLocked();
  }

  void FinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_called_) return;
    finish_called_ = true;
    Finish(*finish_status_);
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_status_ || queue_.empty()) return;
    out_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&out_);
  }

  AgentSession session_;
  v1::AgentMessage in_;
  absl::Mutex mu_;
  std::deque<v1::ServerMessage> queue_ ABSL_GUARDED_BY(mu_);
  v1::ServerMessage out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

NodeGrpcService::NodeGrpcService(const AgentSessionDeps* deps, RpcMetrics* metrics)
    : deps_(deps),
      m_list_nodes_(MethodOf(metrics, "ListNodes")),
      m_get_node_(MethodOf(metrics, "GetNode")),
      m_list_nodeclaims_(MethodOf(metrics, "ListNodeClaims")),
      m_get_nodeclaim_(MethodOf(metrics, "GetNodeClaim")),
      m_list_workloads_(MethodOf(metrics, "ListWorkloads")),
      m_list_events_(MethodOf(metrics, "ListEvents")) {}

grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* NodeGrpcService::Connect(
    grpc::CallbackServerContext* ctx) {
  return new ConnectReactor(deps_, ctx->peer());
}

ServerUnaryReactor* NodeGrpcService::ListNodes(CallbackServerContext* ctx,
                                               const v1::ListRequest* request,
                                               v1::ListNodesResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_nodes_), deps_->objects.nodes, "",
                  request->label_selector(), request->page_size(), request->page_token(),
                  response);
}

ServerUnaryReactor* NodeGrpcService::GetNode(CallbackServerContext* ctx,
                                             const v1::ObjectKey* request, v1::Node* response) {
  return GetInto(UnaryCall(ctx, m_get_node_), deps_->objects.nodes, "", request->name(),
                 response);
}

ServerUnaryReactor* NodeGrpcService::ListNodeClaims(CallbackServerContext* ctx,
                                                    const v1::ListRequest* request,
                                                    v1::ListNodeClaimsResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_nodeclaims_), deps_->objects.nodeclaims, "",
                  request->label_selector(), request->page_size(), request->page_token(),
                  response);
}

ServerUnaryReactor* NodeGrpcService::GetNodeClaim(CallbackServerContext* ctx,
                                                  const v1::ObjectKey* request,
                                                  v1::NodeClaim* response) {
  return GetInto(UnaryCall(ctx, m_get_nodeclaim_), deps_->objects.nodeclaims, "",
                 request->name(), response);
}

ServerUnaryReactor* NodeGrpcService::ListWorkloads(CallbackServerContext* ctx,
                                                   const v1::ListRequest* request,
                                                   v1::ListWorkloadsResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_workloads_), deps_->objects.workloads,
                  request->namespace_(), request->label_selector(), request->page_size(),
                  request->page_token(), response);
}

ServerUnaryReactor* NodeGrpcService::ListEvents(CallbackServerContext* ctx,
                                                const v1::ListEventsRequest* request,
                                                v1::ListEventsResponse* response) {
  UnaryCall call(ctx, m_list_events_);
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

}  // namespace kaito::server
