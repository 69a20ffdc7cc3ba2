// NodeService: the agents' Connect stream (a thin reactor over AgentSession: no thread per
// agent) and reads of nodes, node claims, workloads and events for operators and kaitoctl.
#pragma once

#include "common/rpc_metrics.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "server/agents/agent_session.h"
#include "server/api/object_service.h"
#include "server/api/stream_quota.h"
#include "server/api/watch_reactor.h"

namespace kaito::server {

class NodeGrpcService : public v1::NodeService::CallbackService {
 public:
  // `deps` outlives the service.
  NodeGrpcService(const AgentSessionDeps* deps, RpcMetrics* metrics);

  grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>* Connect(
      grpc::CallbackServerContext* ctx) override;
  ServerUnaryReactor* ListNodes(CallbackServerContext* ctx, const v1::ListRequest* request,
                                v1::ListNodesResponse* response) override;
  ServerUnaryReactor* GetNode(CallbackServerContext* ctx, const v1::ObjectKey* request,
                              v1::Node* response) override;
  ServerUnaryReactor* ListNodeClaims(CallbackServerContext* ctx, const v1::ListRequest* request,
                                     v1::ListNodeClaimsResponse* response) override;
  ServerUnaryReactor* GetNodeClaim(CallbackServerContext* ctx, const v1::ObjectKey* request,
                                   v1::NodeClaim* response) override;
  ServerUnaryReactor* ListWorkloads(CallbackServerContext* ctx, const v1::ListRequest* request,
                                    v1::ListWorkloadsResponse* response) override;
  ServerUnaryReactor* ListEvents(CallbackServerContext* ctx, const v1::ListEventsRequest* request,
                                 v1::ListEventsResponse* response) override;
  grpc::ServerWriteReactor<v1::EventWatchEvent>* WatchEvents(
      CallbackServerContext* ctx, const v1::WatchEventsRequest* request) override;

  // Event watches share the limits (and the quota, which must outlive the service) of the
  // workspace watches. Call before serving.
  void set_watch_limits(const WatchLimits& limits, StreamQuota* quota) {
    watch_limits_ = limits;
    watch_quota_ = quota;
  }

 private:
  const AgentSessionDeps* const deps_;
  RpcMetrics* const metrics_;
  RpcMetrics::Method* const connect_;
  RpcMetrics::Method* const watch_events_;
  WatchLimits watch_limits_;
  StreamQuota* watch_quota_ = nullptr;
};

}  // namespace kaito::server
