// The composition root of kaito-server: opens the store, starts the caches, builds the
// registries, controllers, agent sessions and services, and serves gRPC and /metrics.
// `main()` and the in-process tests and benchmarks construct it the same way. Members are
// declared in dependency order, so that destruction runs from the users to what they use.
#pragma once

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/simulated_fleet.h"
#include "common/clock.h"
#include "common/liveness.h"
#include "common/limits.h"
#include "common/metrics_server.h"
#include "common/reflection_v1.h"
#include "presets/catalog.h"
#include "presets/workspace_validator.h"
#include "provisioner/fleet_bootstrapper.h"
#include "provisioner/provider/simulated_provider.h"
#include "provisioner/provisioner_service.h"
#include "server/agents/agent_session.h"
#include "server/agents/lease_tracker.h"
#include "server/agents/node_service.h"
#include "server/agents/session_registry.h"
#include "server/api/config_service.h"
#include "server/api/preset_service.h"
#include "common/rpc_metrics.h"
#include "server/api/system_service.h"
#include "server/api/workspace_service.h"
#include "server/auth/authorizer.h"
#include "server/controller/controller.h"
#include "server/controllers/event_recorder.h"
#include "server/controllers/garbage_collector.h"
#include "server/controllers/node_lifecycle_reconciler.h"
#include "server/controllers/nodeclaim_reconciler.h"
#include "server/controllers/workspace_reconciler.h"
#include "server/provisioning/provisioner_client.h"
#include "server/registry/cache_validation_context.h"
#include "server/registry/kinds/configmap_policy.h"
#include "server/registry/kinds/controller_kinds.h"
#include "server/registry/kinds/secret_policy.h"
#include "server/registry/kinds/workspace_policy.h"
#include "server/registry/object_cache.h"
#include "server/registry/value_transformer.h"
#include "server/election/leader_elector.h"
#include "server/store/store.h"

namespace kaito::server {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  // Empty: no metrics listener (tests).
  std::string metrics_listen = "127.0.0.1:8080";
  std::string data_dir = ".kaito";
  // "sqlite" (default, under data_dir), "memory" (nothing survives a restart),
  // "etcd://h1:p1,h2:p2".
  std::string store = "sqlite";
  // For an etcd store: the key prefix of this installation, and TLS to the members (as
  // kube-apiserver's --etcd-cafile/--etcd-certfile/--etcd-keyfile).
  std::string etcd_prefix = "/kaito";
  std::string etcd_ca_file;
  std::string etcd_cert_file;
  std::string etcd_key_file;
  bool dev = false;
  // Empty: bring-your-own nodes (unless dev mode, which simulates a provisioner).
  std::string provisioner;
  // Where models.yaml and skus.yaml are; empty uses the catalog built into the binary.
  std::string catalog_dir;
  // Kaito's CLOUD_PROVIDER: which SKU table applies (azure | aws | arc).
  std::string cloud = "azure";
  // Kaito feature gates: vLLM (default runtime), enableMIG, enableAccelerator.
  bool gate_vllm = true;
  bool gate_mig = false;
  bool gate_accelerator = false;
  // Events each cache keeps for watch resumption, and at most this many bytes of them.
  size_t watch_history = 10000;
  size_t watch_history_bytes = 32 << 20;
  // Events, and bytes of them, a watch stream may queue for a slow client before it is
  // cut off (ABORTED, resumable); a client that takes no event for the stall timeout is
  // cut off too.
  size_t watch_backlog = kMaxWatchBacklog;
  size_t watch_backlog_bytes = 16 << 20;
  absl::Duration watch_stall_timeout = absl::Seconds(60);
  // Open watches in total and per client connection (RESOURCE_EXHAUSTED beyond).
  size_t max_watches = 10000;
  size_t max_watches_per_connection = 1000;
  // Revisions of history the store keeps.
  int64_t store_history = 100000;
  // The largest request gRPC accepts (a little more than the largest object).
  int max_message_bytes = static_cast<int>(kMaxRequestBytes);
  // Memory gRPC's transports may hold for requests being received (0 = no bound): gRPC
  // 1.51 buffers a whole request before it checks its size, so this is what bounds it.
  size_t max_transport_memory = 256 << 20;
  // Secrets are encrypted at rest (AES-256-GCM) with the keys of this file: base64 of a
  // 32-byte key per line, the first encrypts, all decrypt. Empty: stored unencrypted.
  std::string encryption_key_file;
  // TLS on the gRPC and HTTP ports (both files, or neither); client certificates are
  // verified against `client_ca_file` and identify their subject (docs/security.md).
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string client_ca_file;
  // Authentication by static bearer tokens, and roles per namespace.
  std::string token_auth_file;
  std::string authorization_policy_file;
  // The CA that signed kaito-provisioner's certificate: the server dials it over TLS,
  // presenting its own certificate (tls_cert_file) as its identity.
  std::string provisioner_ca_file;
  // Time for every component; null makes the app own a RealClock (tests pass a FakeClock).
  Clock* clock = nullptr;
  // Off: the API alone, with no controllers (tests of API semantics, the API benchmark).
  bool controllers = true;

  // Agents: lease TTL and the heartbeat interval they are told; a node whose lease lapsed
  // this long more is lost and its workloads are placed again.
  absl::Duration node_lease_ttl = absl::Seconds(20);
  absl::Duration node_heartbeat_interval = absl::Seconds(5);
  absl::Duration node_lost_grace = absl::Seconds(30);
  // From SIGTERM to the shutdown proper: the server keeps serving while /readyz and the
  // gRPC health service already say it is going, so that load balancers and clients move
  // away first.
  absl::Duration shutdown_grace_period = absl::ZeroDuration();
  // Node claims: create attempts and the backoff between them.
  int claim_max_attempts = 3;
  absl::Duration claim_retry_base = absl::Seconds(10);
  absl::Duration claim_poll_interval = absl::Seconds(1);
  // A created machine whose node is not initialized (registered, Ready, with its instance
  // type's GPUs) this long after its creation is released and created again; 0: no limit.
  absl::Duration node_initialization_timeout = absl::Minutes(15);
  // Events not seen again for this long are deleted (Kubernetes' default is 1h).
  absl::Duration event_ttl = absl::Hours(1);
  // Several replicas on one etcd: the controllers run on the replica that holds the leader
  // lease (docs/ha.md). Only with an etcd store; `replica_name` empty: HOSTNAME_<random>.
  bool leader_elect = true;
  std::string replica_name;
  absl::Duration leader_elect_lease_duration = absl::Seconds(15);
  absl::Duration leader_elect_renew_deadline = absl::Seconds(10);
  absl::Duration leader_elect_retry_period = absl::Seconds(2);
  // Where the provisioned nodes' agents dial; empty: 127.0.0.1:<the gRPC port>.
  std::string advertise_address;
  int workspace_workers = 8;
  // Dev mode's simulated cloud and agents.
  absl::Duration simulated_create_delay = absl::Seconds(2);
  absl::Duration simulated_delete_delay = absl::Seconds(1);
  agent::SimulatedRuntimeOptions simulated_runtime;
  std::vector<v1::SimulatedFault> simulated_faults;
};

// Parses Kaito's --feature-gates syntax ("k=v,k=v") into `options`; unknown gates and
// values other than true/false are errors.
absl::Status ParseFeatureGates(const std::string& gates, ServerOptions& options);

class ServerApp {
 public:
  static absl::StatusOr<std::unique_ptr<ServerApp>> Start(const ServerOptions& options);
  ~ServerApp();

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : 0; }
  // Blocks until Shutdown.
  void Wait();
  // The start of a graceful shutdown: /readyz answers 503 "shutting down" and the gRPC
  // health service NOT_SERVING; everything else goes on serving until Shutdown.
  void Drain();
  // Stops accepting RPCs, ends open streams, then closes the store.
  void Shutdown();

  store::Store* store() { return store_.get(); }
  ObjectRegistry<v1::Workspace>* workspaces() { return workspaces_.get(); }
  ObjectRegistry<v1::Secret>* secrets() { return secrets_.get(); }
  Authorizer* authorizer() { return authorizer_.get(); }
  ObjectRegistry<v1::Node>* nodes() { return nodes_.get(); }
  ObjectRegistry<v1::NodeClaim>* nodeclaims() { return nodeclaims_.get(); }
  ObjectRegistry<v1::Workload>* workloads() { return workloads_.get(); }
  const presets::Catalog& catalog() const { return *catalog_; }
  prometheus::Registry& metrics_registry() { return *prometheus_; }
  SessionRegistry* sessions() { return session_registry_.get(); }
  // Dev mode's simulated cloud; null otherwise.
  provisioner::SimulatedProvider* simulated_cloud() { return simulated_provider_.get(); }

 private:
  ServerApp() = default;
  absl::Status StartControllers(const ServerOptions& options);
  void WatchForControllers();

  std::unique_ptr<RealClock> owned_clock_;
  Clock* clock_ = nullptr;
  // /livez: the clock's timer thread keeps turning (after the clock, before the metrics
  // server that asks it).
  std::unique_ptr<LivenessWatch> liveness_;
  std::shared_ptr<prometheus::Registry> prometheus_;
  // How Secrets are kept at rest; outlives the store, the caches and the registries.
  std::unique_ptr<ValueTransformer> secret_transformer_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<presets::Catalog> catalog_;
  std::unique_ptr<ObjectCache> workspace_cache_, configmap_cache_, secret_cache_, node_cache_,
      nodeclaim_cache_, workload_cache_, event_cache_;
  std::unique_ptr<presets::ValidationContext> validation_context_;
  std::unique_ptr<presets::WorkspaceValidator> validator_;
  std::unique_ptr<ObjectRegistry<v1::Workspace>> workspaces_;
  std::unique_ptr<ObjectRegistry<v1::ConfigMap>> configmaps_;
  std::unique_ptr<ObjectRegistry<v1::Secret>> secrets_;
  std::unique_ptr<ObjectRegistry<v1::Node>> nodes_;
  std::unique_ptr<ObjectRegistry<v1::NodeClaim>> nodeclaims_;
  std::unique_ptr<ObjectRegistry<v1::Workload>> workloads_;
  std::unique_ptr<ObjectRegistry<v1::Event>> events_;
  std::unique_ptr<EventRecorder> event_recorder_;
  // Controllers' view of the world: plain pointers to the registries above.
  ControlPlaneObjects objects_;
  // The provisioner: over gRPC, or dev mode's simulated cloud in process (which starts
  // simulated agents that dial this server's port).
  std::unique_ptr<agent::SimulatedFleet> simulated_fleet_;
  std::unique_ptr<provisioner::FleetBootstrapper> bootstrapper_;
  std::unique_ptr<provisioner::SimulatedProvider> simulated_provider_;
  std::unique_ptr<provisioner::SimulatedCloudGrpcService> simulated_cloud_service_;
  std::unique_ptr<ProvisionerClient> provisioner_client_;
  ProvisionerClient* provisioner_ = nullptr;
  // Agents.
  std::unique_ptr<LeaseTracker> leases_;
  std::unique_ptr<SessionRegistry> session_registry_;
  AgentSessionStats agent_stats_;
  AgentSessionDeps agent_deps_;
  std::unique_ptr<NodeGrpcService> node_service_;
  // Controllers (after everything they use; stopped first).
  std::unique_ptr<WorkspaceReconciler> workspace_reconciler_;
  std::unique_ptr<NodeClaimReconciler> nodeclaim_reconciler_;
  std::unique_ptr<NodeLifecycleReconciler> node_lifecycle_reconciler_;
  std::unique_ptr<GarbageCollector> garbage_collector_;
  std::unique_ptr<Controller> workspace_controller_, nodeclaim_controller_,
      node_lifecycle_controller_, gc_controller_;
  std::vector<std::unique_ptr<CacheWatch>> controller_watches_;
  // Leadership (etcd only): the elector, this replica's name, the fence of its term, and the
  // store watch that brings other replicas' node lease renewals.
  std::vector<Controller*> Controllers();
  void StartedLeading(const store::WriteFence& fence);
  // Who runs the controllers: the elector's view, or (no election) this server when it runs
  // controllers at all.
  bool Leading() const;
  std::string Leader() const;
  int64_t LeaderTransitions() const;
  void StoppedLeading();
  std::string replica_name_;
  bool options_controllers_ = false;
  std::unique_ptr<LeaderElector> elector_;
  absl::Mutex fence_mu_;
  std::shared_ptr<const store::WriteFence> fence_ ABSL_GUARDED_BY(fence_mu_);
  std::unique_ptr<store::WatchHandle> node_lease_watch_;
  // The node lifecycle controller, for lease transitions: set once it exists (agents can
  // connect before), cleared at shutdown.
  std::atomic<Controller*> lease_transitions_{nullptr};
  std::vector<std::unique_ptr<CacheSink>> controller_sinks_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<WorkspaceGrpcService> workspace_service_;
  std::unique_ptr<ConfigGrpcService> config_service_;
  std::unique_ptr<SecretGrpcService> secret_service_;
  std::unique_ptr<SystemGrpcService> system_service_;
  std::unique_ptr<PresetGrpcService> preset_service_;
  std::unique_ptr<ReflectionV1Service> reflection_v1_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsServer> metrics_;
  int grpc_port_ = 0;
  bool shut_down_ = false;
  std::atomic<bool> draining_{false};
  // The gRPC health service says SERVING only while not draining and the store takes
  // writes; guards the health service against the store's listener during start and stop.
  void UpdateServingStatus();
  absl::Mutex health_mu_;
  grpc::Server* health_server_ ABSL_GUARDED_BY(health_mu_) = nullptr;
  std::atomic<bool> store_writable_{true};
};

}  // namespace kaito::server
