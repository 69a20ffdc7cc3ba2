#include "server/server_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/grpc_server.h"
#include "common/metric_families.h"
#include "common/tls.h"
#include "presets/planner.h"
#include "server/provisioning/grpc_provisioner_client.h"
#include "server/registry/aes_gcm_transformer.h"
#include "server/registry/cache_validation_context.h"
#include "server/registry/object_meta.h"
#include "server/registry/reseal_stored_values.h"
#include "server/store/etcd_store.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"
#include "server/workspace_metrics.h"

namespace kaito::server {
namespace {

// Reads store and cache figures at scrape time.
class StateCollector : public prometheus::Collectable {
 public:
  StateCollector(store::Store* store, std::vector<std::pair<std::string, ObjectCache*>> caches)
      : store_(store), caches_(std::move(caches)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    families.push_back(GaugeFamily("kaito_store_revision", "The store's current revision.",
                                   {{{}, static_cast<double>(store_->CurrentRevision())}}));
    families.push_back(GaugeFamily("kaito_store_compacted_revision",
                                   "Revisions up to this one have no watch history.",
                                   {{{}, static_cast<double>(store_->CompactedRevision())}}));
    if (auto* sqlite = dynamic_cast<store::SqliteStore*>(store_)) {
      store::SqliteStoreStats s = sqlite->stats();
      families.push_back(CounterFamily("kaito_store_commits_total",
                                       "Transactions committed by the store writer (group "
                                       "commits).",
                                       static_cast<double>(s.commits)));
      families.push_back(CounterFamily("kaito_store_writes_total",
                                       "Writes made durable by the store writer.",
                                       static_cast<double>(s.writes)));
      families.push_back(CounterFamily("kaito_store_failed_commits_total",
                                       "Transactions that failed and were rolled back.",
                                       static_cast<double>(s.failed_commits)));
      families.push_back(HistogramFamily("kaito_store_commit_duration_seconds",
                                         "A store transaction from BEGIN to a durable COMMIT.",
                                         s.commit_seconds));
      families.push_back(HistogramFamily("kaito_store_commit_batch_writes",
                                         "Writes per store transaction (group commit).",
                                         s.batch_writes));
    }
    if (auto* etcd = dynamic_cast<store::EtcdStore*>(store_)) {
      store::EtcdStore::Stats s = etcd->stats();
      families.push_back(CounterFamily("kaito_store_writes_total",
                                       "Writes acknowledged by etcd.",
                                       static_cast<double>(s.writes)));
      families.push_back(CounterFamily("kaito_store_failed_commits_total",
                                       "Writes that failed for want of etcd (unreachable, too slow, out of space).",
                                       static_cast<double>(s.failed_writes)));
      families.push_back(HistogramFamily("kaito_store_commit_duration_seconds",
                                         "A write transaction, from sending it to etcd to etcd's answer.",
                                         s.txn_seconds));
      families.push_back(GaugeFamily("kaito_store_etcd_transactions_in_flight",
                                     "Write transactions sent to etcd and not yet answered.",
                                     {{{}, static_cast<double>(s.in_flight)}}));
      families.push_back(CounterFamily("kaito_store_etcd_watch_reconnects_total",
                                       "Times the etcd watch stream broke and was opened again.",
                                       static_cast<double>(s.watch_reconnects)));
    }
    std::vector<std::pair<MetricLabels, double>> objects, watchers;
    for (const auto& [kind, cache] : caches_) {
      objects.push_back({{{"kind", kind}}, static_cast<double>(cache->size())});
      watchers.push_back({{{"kind", kind}}, static_cast<double>(cache->watchers())});
    }
    families.push_back(
        GaugeFamily("kaito_cache_objects", "Objects held by the cache, by kind.", objects));
    families.push_back(GaugeFamily("kaito_cache_watchers",
                                   "Watch streams attached to the cache, by kind.", watchers));
    return families;
  }

 private:
  store::Store* store_;
  std::vector<std::pair<std::string, ObjectCache*>> caches_;
};

// Whether this replica runs the controllers now, and how often it started to.
class LeaderCollector : public prometheus::Collectable {
 public:
  LeaderCollector(std::string replica, std::function<bool()> leading,
                  std::function<int64_t()> transitions)
      : replica_(std::move(replica)), leading_(std::move(leading)),
        transitions_(std::move(transitions)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    families.push_back(GaugeFamily("kaito_leader_election_leading",
                                   "1 while this replica holds the controllers' leader lease "
                                   "(runs the controllers), else 0.",
                                   {{{{"replica", replica_}}, leading_() ? 1.0 : 0.0}}));
    families.push_back(CounterFamily("kaito_leader_election_transitions_total",
                                     "Times this replica became the leader.",
                                     static_cast<double>(transitions_())));
    return families;
  }

 private:
  const std::string replica_;
  const std::function<bool()> leading_;
  const std::function<int64_t()> transitions_;
};

absl::StatusOr<std::unique_ptr<store::Store>> OpenStore(const ServerOptions& options) {
  if (options.store == "memory") {
    spdlog::warn("store: in memory; nothing survives a restart");
    return std::unique_ptr<store::Store>(new store::MemoryStore());
  }
  if (options.store == "sqlite") {
    store::SqliteStoreOptions sqlite;
    sqlite.path = (std::filesystem::path(options.data_dir) / "kaito.db").string();
    sqlite.history_retention = options.store_history;
    auto store = store::SqliteStore::Open(sqlite);
    if (!store.ok()) return store.status();
    spdlog::info("store: sqlite at {} (revision {})", sqlite.path, (*store)->CurrentRevision());
    return std::unique_ptr<store::Store>(std::move(*store));
  }
  if (absl::StartsWith(options.store, "etcd://")) {
    auto endpoints = store::ParseEtcdEndpoints(options.store);
    if (!endpoints.ok()) return endpoints.status();
    if (!options.etcd_prefix.empty() && options.etcd_prefix.front() != '/') {
      return absl::InvalidArgumentError("--etcd-prefix " + options.etcd_prefix +
                                        ": must start with /");
    }
    store::EtcdStoreOptions etcd;
    etcd.endpoints = *endpoints;
    etcd.key_prefix = options.etcd_prefix;
    etcd.ca_file = options.etcd_ca_file;
    etcd.cert_file = options.etcd_cert_file;
    etcd.key_file = options.etcd_key_file;
    etcd.history_retention = options.store_history;
    auto store = store::EtcdStore::Open(etcd);
    if (!store.ok()) return store.status();
    spdlog::info("store: etcd at {} under {} (revision {}{})", options.store.substr(7),
                 etcd.key_prefix.empty() ? "/" : etcd.key_prefix, (*store)->CurrentRevision(),
                 etcd.ca_file.empty() && etcd.cert_file.empty() ? ", plaintext" : ", TLS");
    return std::unique_ptr<store::Store>(std::move(*store));
  }
  return absl::InvalidArgumentError("--store: unknown backend \"" + options.store +
                                    "\" (sqlite, memory, etcd://HOST:PORT,...)");
}

// AES-GCM with the keys of --encryption-key-file, or plaintext without one.
absl::StatusOr<std::unique_ptr<ValueTransformer>> SecretTransformer(const ServerOptions& options) {
  if (options.encryption_key_file.empty()) {
    spdlog::info("secrets: stored unencrypted (no --encryption-key-file)");
    return std::unique_ptr<ValueTransformer>(new PlaintextTransformer());
  }
  auto aes = AesGcmTransformer::FromKeyFile(options.encryption_key_file);
  if (!aes.ok()) return aes.status();
  spdlog::info("secrets: encrypted at rest with AES-256-GCM, key id {} ({} key(s) in {})",
               (*aes)->primary_key_id(), (*aes)->key_count(), options.encryption_key_file);
  return std::unique_ptr<ValueTransformer>(std::move(*aes));
}

}  // namespace

absl::Status ParseFeatureGates(const std::string& gates, ServerOptions& options) {
  if (gates.empty()) return absl::OkStatus();
  for (absl::string_view item : absl::StrSplit(gates, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    bool value;
    if (kv.second == "true") {
      value = true;
    } else if (kv.second == "false") {
      value = false;
    } else {
      return absl::InvalidArgumentError("--feature-gates: " + kv.first + " must be true or false");
    }
    if (kv.first == "vLLM") {
      options.gate_vllm = value;
    } else if (kv.first == "enableMIG") {
      options.gate_mig = value;
    } else if (kv.first == "enableAccelerator") {
      options.gate_accelerator = value;
    } else {
      return absl::InvalidArgumentError("--feature-gates: unknown gate \"" + kv.first +
                                        "\" (vLLM, enableMIG, enableAccelerator)");
    }
  }
  return absl::OkStatus();
}

namespace {

// The server's identity towards kaito-provisioner: its own certificate, and the CA that
// signed the provisioner's.
TlsClientFiles ProvisionerClientFiles(const ServerOptions& o) {
  TlsClientFiles files;
  files.ca_file = o.provisioner_ca_file;
  if (!o.provisioner_ca_file.empty()) {
    files.cert_file = o.tls_cert_file;
    files.key_file = o.tls_key_file;
  }
  return files;
}

bool WorkloadRefersToSecret(const v1::WorkloadSpec& spec, const std::string& name) {
  for (const auto& v : spec.volumes()) {
    if (v.secret() == name) return true;
  }
  for (const auto* list : {&spec.init_containers(), &spec.containers()}) {
    for (const v1::ContainerSpec& c : *list) {
      for (const auto& s : c.image_pull_secrets()) {
        if (s == name) return true;
      }
      for (const auto& e : c.env()) {
        if (e.has_secret_key_ref() && e.secret_key_ref().name() == name) return true;
      }
    }
  }
  return false;
}

// The controllers' leader lease, and the node lease renewals replicas share, as store keys.
constexpr char kControllersLeaseKey[] = "/leases/kaito-server-controllers";
constexpr char kNodeLeasePrefix[] = "/nodeleases/";

// HOSTNAME_<8 random hex digits>, as Kubernetes' leader election names a candidate.
std::string DefaultReplicaName() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof(host), "kaito-server");
  }
  std::random_device random;
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "_%08x", static_cast<unsigned>(random()));
  return std::string(host) + suffix;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerOptions& options) {
  std::unique_ptr<ServerApp> app(new ServerApp());
  if (options.clock != nullptr) {
    app->clock_ = options.clock;
  } else {
    app->owned_clock_ = std::make_unique<RealClock>();
    app->clock_ = app->owned_clock_.get();
  }
  app->liveness_ = std::make_unique<LivenessWatch>();
  app->liveness_->WatchClock("the clock's timer thread", app->clock_);
  app->prometheus_ = std::make_shared<prometheus::Registry>();

  auto catalog = options.catalog_dir.empty() ? presets::Catalog::Embedded()
                                             : presets::Catalog::FromDirectory(options.catalog_dir);
  if (!catalog.ok()) return catalog.status();
  app->catalog_ = std::make_unique<presets::Catalog>(std::move(*catalog));
  if (options.cloud != "azure" && options.cloud != "aws" && options.cloud != "arc") {
    return absl::InvalidArgumentError("--cloud: unknown cloud provider \"" + options.cloud +
                                      "\" (azure, aws, arc)");
  }

  // Credentials and policies are checked before the store is touched.
  const TlsServerFiles tls{options.tls_cert_file, options.tls_key_file, options.client_ca_file,
                           false};
  if (absl::Status s = CheckTlsServerFiles(tls); !s.ok()) return s;
  auto authorizer = Authorizer::Create({options.token_auth_file, options.authorization_policy_file,
                                        !options.client_ca_file.empty()});
  if (!authorizer.ok()) return authorizer.status();
  app->authorizer_ = std::move(*authorizer);
  if (app->authorizer_->open()) {
    spdlog::warn(
        "access control is off: every client may do everything (give "
        "--token-auth-file or --client-ca-file, and --authorization-policy-file)");
  }

  // The key file is checked before the store is touched.
  auto transformer = SecretTransformer(options);
  if (!transformer.ok()) return transformer.status();
  app->secret_transformer_ = std::move(*transformer);

  auto store = OpenStore(options);
  if (!store.ok()) return store.status();
  app->store_ = std::move(*store);
  app->store_->OnWriteHealthChange([raw = app.get()](const std::string& problem) {
    raw->store_writable_.store(problem.empty());
    raw->UpdateServingStatus();
  });

  // Every stored secret must open before anything is served; those sealed the old way
  // (plaintext, or a key that is no longer first) are sealed again now.
  auto resealed = ResealStoredValues(*app->store_, "/secrets/", *app->secret_transformer_);
  if (!resealed.ok()) return resealed.status();
  if (resealed->resealed > 0) {
    spdlog::info("secrets: {} of {} stored secrets encrypted again with the first key",
                 resealed->resealed, resealed->values);
  }

  auto cache = [&](const char* prefix, const google::protobuf::Message* prototype,
                   const ValueTransformer* transformer = nullptr) {
    auto c = std::make_unique<ObjectCache>(app->store_.get(), prefix, prototype,
                                           options.watch_history, transformer);
    c->SetHistoryByteLimit(options.watch_history_bytes);
    return c;
  };
  app->workspace_cache_ = cache("/workspaces/", &v1::Workspace::default_instance());
  app->configmap_cache_ = cache("/configmaps/", &v1::ConfigMap::default_instance());
  app->secret_cache_ =
      cache("/secrets/", &v1::Secret::default_instance(), app->secret_transformer_.get());
  app->node_cache_ = cache("/nodes/", &v1::Node::default_instance());
  app->nodeclaim_cache_ = cache("/nodeclaims/", &v1::NodeClaim::default_instance());
  app->workload_cache_ = cache("/workloads/", &v1::Workload::default_instance());
  app->event_cache_ = cache("/events/", &v1::Event::default_instance());
  for (ObjectCache* c :
       {app->workspace_cache_.get(), app->configmap_cache_.get(), app->secret_cache_.get(),
        app->node_cache_.get(), app->nodeclaim_cache_.get(), app->workload_cache_.get(),
        app->event_cache_.get()}) {
    if (absl::Status s = c->Start(); !s.ok()) return s;
  }
  Clock* clock = app->clock_;
  presets::ValidationOptions validation;
  validation.node_auto_provisioning = options.dev || !options.provisioner.empty();
  validation.cloud = options.cloud;
  validation.vllm_default = options.gate_vllm;
  validation.enable_mig = options.gate_mig;
  validation.enable_accelerator = options.gate_accelerator;
  app->validation_context_ = std::make_unique<CacheValidationContext>(
      app->node_cache_.get(), app->configmap_cache_.get(), app->secret_cache_.get());
  app->validator_ = std::make_unique<presets::WorkspaceValidator>(app->catalog_.get(), validation);
  WorkspaceCheck kaito_rules = [validator = app->validator_.get(),
                                context = app->validation_context_.get()](
                                   const v1::Workspace& ws, const v1::Workspace* old,
                                   FieldErrors& errors, std::vector<std::string>& warnings) {
    validator->Validate(ws, old, *context, errors, warnings);
  };
  app->workspaces_ = std::make_unique<ObjectRegistry<v1::Workspace>>(
      WorkspacePolicy(std::move(kaito_rules)), app->store_.get(), app->workspace_cache_.get(),
      clock);
  app->configmaps_ = std::make_unique<ObjectRegistry<v1::ConfigMap>>(
      ConfigMapPolicy(), app->store_.get(), app->configmap_cache_.get(), clock);
  app->secrets_ = std::make_unique<ObjectRegistry<v1::Secret>>(SecretPolicy(), app->store_.get(),
                                                               app->secret_cache_.get(), clock,
                                                               app->secret_transformer_.get());
  app->nodes_ = std::make_unique<ObjectRegistry<v1::Node>>(NodePolicy(), app->store_.get(),
                                                           app->node_cache_.get(), clock);
  app->nodeclaims_ = std::make_unique<ObjectRegistry<v1::NodeClaim>>(
      NodeClaimPolicy(), app->store_.get(), app->nodeclaim_cache_.get(), clock);
  app->workloads_ = std::make_unique<ObjectRegistry<v1::Workload>>(
      WorkloadPolicy(), app->store_.get(), app->workload_cache_.get(), clock);
  app->events_ = std::make_unique<ObjectRegistry<v1::Event>>(EventPolicy(), app->store_.get(),
                                                             app->event_cache_.get(), clock);
  app->objects_ =
      ControlPlaneObjects{app->workspaces_.get(), app->nodes_.get(),  app->nodeclaims_.get(),
                          app->workloads_.get(),  app->events_.get(), app->configmaps_.get()};
  app->event_recorder_ = std::make_unique<EventRecorder>(app->events_.get(), clock, "kaito-server");

  // The provisioner.
  if (!options.provisioner.empty()) {
    app->provisioner_client_ = std::make_unique<GrpcProvisionerClient>(
        grpc::CreateChannel(options.provisioner,
                            GrpcChannelCredentials(ProvisionerClientFiles(options))),
        absl::Seconds(10));
    app->provisioner_ = app->provisioner_client_.get();
  } else if (options.dev) {
    if (tls.enabled() || !app->authorizer_->open()) {
      return absl::InvalidArgumentError(
          "--dev's simulated agents dial this server without credentials: run dev mode without "
          "TLS and access control, or give --provisioner");
    }
    app->simulated_fleet_ =
        std::make_unique<agent::SimulatedFleet>(clock, options.simulated_runtime);
    app->bootstrapper_ =
        std::make_unique<provisioner::FleetBootstrapper>(app->simulated_fleet_.get());
    provisioner::SimulatedProviderOptions sim;
    sim.create_delay = options.simulated_create_delay;
    sim.delete_delay = options.simulated_delete_delay;
    app->simulated_provider_ = std::make_unique<provisioner::SimulatedProvider>(
        clock, app->catalog_.get(), options.cloud, sim, app->bootstrapper_.get());
    app->simulated_provider_->SetFaults(options.simulated_faults);
    app->simulated_cloud_service_ =
        std::make_unique<provisioner::SimulatedCloudGrpcService>(app->simulated_provider_.get());
    app->provisioner_ = app->simulated_provider_.get();
  }

  // Agents: leases in memory, sessions, the Connect service.
  app->leases_ = std::make_unique<LeaseTracker>(
      clock, options.node_lease_ttl, [raw = app.get()](const std::string& node) {
        // Agents may connect before the controllers exist (the server serves first).
        if (Controller* c = raw->lease_transitions_.load()) c->Enqueue(node);
      });
  app->options_controllers_ = options.controllers;
  auto* etcd = dynamic_cast<store::EtcdStore*>(app->store_.get());
  app->replica_name_ = options.replica_name.empty() ? DefaultReplicaName() : options.replica_name;
  if (etcd != nullptr && options.leader_elect && options.controllers) {
    LeaderElectionOptions election;
    election.identity = app->replica_name_;
    election.key = etcd->key_prefix() + kControllersLeaseKey;
    election.lease_duration = options.leader_elect_lease_duration;
    election.renew_deadline = options.leader_elect_renew_deadline;
    election.retry_period = options.leader_elect_retry_period;
    if (absl::Status s = CheckLeaderElectionOptions(election); !s.ok()) return s;
    app->elector_ = std::make_unique<LeaderElector>(
        etcd->channel(), election,
        LeaderCallbacks{[raw = app.get()](const store::WriteFence& f) { raw->StartedLeading(f); },
                        [raw = app.get()] { raw->StoppedLeading(); }});
    // Renewals reach the leader through the store, whichever replica hosts the session.
    store::Store* shared = app->store_.get();
    const std::string replica = app->replica_name_;
    app->leases_->Share(LeaseTracker::Sharing{
        [shared, replica](const std::string& node) {
          shared->Put(kNodeLeasePrefix + node, replica, store::kAnyRevision,
                      [node](absl::StatusOr<int64_t> written) {
                        if (!written.ok()) {
                          spdlog::debug("node {}: publishing its lease renewal: {}", node,
                                        written.status().ToString());
                        }
                      });
        },
        [shared](const std::string& node) {
          shared->Delete(kNodeLeasePrefix + node, store::kAnyRevision,
                         [](absl::StatusOr<int64_t>) {});
        },
        std::max(options.node_lease_ttl / 4, absl::Milliseconds(100))});
    auto watch = app->store_->Watch(
        kNodeLeasePrefix, app->store_->CurrentRevision(),
        [leases = app->leases_.get()](const std::vector<store::Event>& events) {
          for (const store::Event& e : events) {
            if (e.type == store::Event::Type::kPut) {
              leases->Observe(e.kv.key.substr(std::string_view(kNodeLeasePrefix).size()));
            }
          }
        });
    if (!watch.ok()) return watch.status();
    app->node_lease_watch_ = std::move(*watch);
  }
  app->session_registry_ = std::make_unique<SessionRegistry>(app->workloads_.get(), clock);
  if (absl::Status s = app->session_registry_->Start(); !s.ok()) return s;
  app->agent_deps_.objects = app->objects_;
  app->agent_deps_.leases = app->leases_.get();
  app->agent_deps_.sessions = app->session_registry_.get();
  app->agent_deps_.events = app->event_recorder_.get();
  app->agent_deps_.clock = clock;
  app->agent_deps_.stats = &app->agent_stats_;
  app->agent_deps_.auth = app->authorizer_.get();
  // Kubernetes' node authorizer: a node reads a Secret only when a workload placed on it
  // refers to it.
  app->authorizer_->set_node_secret_check(
      [workloads = app->workloads_.get()](const std::string& node, const std::string& ns,
                                          const std::string& name) {
        return !workloads
                    ->ListShared(ns,
                                 [&](const v1::Workload& w) {
                                   return w.spec().node_name() == node &&
                                          WorkloadRefersToSecret(w.spec(), name);
                                 })
                    .empty();
      });
  app->agent_deps_.status_writer = std::make_shared<WorkloadStatusWriter>(app->workloads_.get());
  app->agent_deps_.options.lease_ttl = options.node_lease_ttl;
  app->agent_deps_.options.heartbeat_interval = options.node_heartbeat_interval;

  app->rpc_metrics_ = std::make_unique<RpcMetrics>(*app->prometheus_);
  app->node_service_ =
      std::make_unique<NodeGrpcService>(&app->agent_deps_, app->rpc_metrics_.get());
  Authorizer* auth = app->authorizer_.get();
  app->workspace_service_ =
      std::make_unique<WorkspaceGrpcService>(app->workspaces_.get(), app->rpc_metrics_.get(), auth);
  app->config_service_ =
      std::make_unique<ConfigGrpcService>(app->configmaps_.get(), auth);
  app->secret_service_ =
      std::make_unique<SecretGrpcService>(app->secrets_.get(), auth);
  WatchLimits watch_limits;
  watch_limits.backlog_events = options.watch_backlog;
  watch_limits.backlog_bytes = options.watch_backlog_bytes;
  watch_limits.stall_timeout = absl::ToChronoMilliseconds(options.watch_stall_timeout);
  app->workspace_service_->set_watch_limits(watch_limits);
  app->workspace_service_->set_watch_quota(
      StreamLimits{options.max_watches, options.max_watches_per_connection});
  app->node_service_->set_watch_limits(watch_limits, app->workspace_service_->watch_quota());
  app->workspace_service_->set_planner(
      [catalog = app->catalog_.get(), validation,
       context = app->validation_context_.get()](const v1::Workspace& ws) {
        return presets::PlanWorkspace(*catalog, validation, *context, ws);
      });
  if (app->provisioner_ != nullptr) {
    app->workspace_service_->set_quota_reader(
        [provisioner = app->provisioner_](const v1::GetQuotaRequest& request,
                                          std::function<void(v1::QuotaHeadroom)> done) {
          provisioner->GetQuota(request, [request, done = std::move(done)](
                                             absl::StatusOr<v1::QuotaHeadroom> headroom) {
            if (headroom.ok()) return done(*std::move(headroom));
            v1::QuotaHeadroom unknown;
            unknown.set_instance_type(request.instance_type());
            unknown.set_nodes(request.nodes());
            unknown.set_message("the provisioner did not answer: " +
                                std::string(headroom.status().message()));
            done(std::move(unknown));
          });
        });
  }
  app->system_service_ = std::make_unique<SystemGrpcService>(app->store_.get(), options.dev, auth);
  app->system_service_->set_leadership(app->replica_name_,
                                       [raw = app.get()] { return raw->Leader(); });
  app->preset_service_ =
      std::make_unique<PresetGrpcService>(app->catalog_.get(), options.cloud, auth);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  GrpcServerLimits limits;
  limits.max_receive_bytes = options.max_message_bytes;
  limits.transport_memory_bytes = options.max_transport_memory;
  ApplyServerDefaults(builder, app->rpc_metrics_.get(), limits);
  builder.AddListeningPort(options.listen, GrpcServerCredentials(tls), &app->grpc_port_);
  builder.RegisterService(app->workspace_service_.get());
  builder.RegisterService(app->config_service_.get());
  builder.RegisterService(app->secret_service_.get());
  builder.RegisterService(app->system_service_.get());
  builder.RegisterService(app->preset_service_.get());
  builder.RegisterService(app->node_service_.get());
  if (app->simulated_cloud_service_) builder.RegisterService(app->simulated_cloud_service_.get());
  std::vector<std::string> services = {v1::WorkspaceService::service_full_name(),
                                       v1::ConfigService::service_full_name(),
                                       v1::SecretService::service_full_name(),
                                       v1::SystemService::service_full_name(),
                                       v1::PresetService::service_full_name(),
                                       v1::NodeService::service_full_name(),
                                       "grpc.health.v1.Health",
                                       "grpc.reflection.v1alpha.ServerReflection",
                                       "grpc.reflection.v1.ServerReflection"};
  if (app->simulated_cloud_service_) {
    services.push_back(v1::SimulatedCloudService::service_full_name());
  }
  app->reflection_v1_ = std::make_unique<ReflectionV1Service>(std::move(services));
  builder.RegisterService(app->reflection_v1_.get());
  app->server_ = builder.BuildAndStart();
  if (!app->server_ || app->grpc_port_ == 0) {
    return absl::UnavailableError("cannot listen for gRPC on " + options.listen);
  }
  {
    absl::MutexLock lock(&app->health_mu_);
    app->health_server_ = app->server_.get();
  }
  app->UpdateServingStatus();
  if (options.controllers) {
    if (absl::Status s = app->StartControllers(options); !s.ok()) return s;
  }
  if (!options.metrics_listen.empty()) {
    auto state = std::make_shared<StateCollector>(app->store_.get(),
                                                  std::vector<std::pair<std::string, ObjectCache*>>{
                                                      {"workspace", app->workspace_cache_.get()},
                                                      {"configmap", app->configmap_cache_.get()},
                                                      {"secret", app->secret_cache_.get()},
                                                      {"node", app->node_cache_.get()},
                                                      {"nodeclaim", app->nodeclaim_cache_.get()},
                                                      {"workload", app->workload_cache_.get()},
                                                      {"event", app->event_cache_.get()}});
    auto metrics = MetricsServer::Start(
        options.metrics_listen,
        {app->prometheus_, state,
         std::make_shared<WorkspaceCollector>(app->workspace_cache_.get()),
         std::make_shared<LeaderCollector>(
             app->replica_name_, [raw = app.get()] { return raw->Leading(); },
             [raw = app.get()] { return raw->LeaderTransitions(); }),
         std::make_shared<FleetCollector>(app->node_cache_.get(), app->nodeclaim_cache_.get(),
                                          [raw = app.get()]() -> size_t {
                                            return raw->session_registry_
                                                       ? raw->session_registry_->sessions()
                                                       : 0;
                                          })},
        [raw = app.get()] {
          return raw->draining_.load() ? std::string("shutting down")
                                       : raw->store_->WriteProblem();
        },
        tls, [raw = app.get()] { return raw->liveness_->Check(); });
    if (!metrics.ok()) return metrics.status();
    app->metrics_ = std::move(*metrics);
  }
  return app;
}

namespace {

// Hands every event of a cache to `fn` (which must only enqueue keys).
class FuncSink : public CacheSink {
 public:
  explicit FuncSink(std::function<void(const CacheEventPtr&)> fn) : fn_(std::move(fn)) {}
  void OnEvent(const CacheEventPtr& event) override {
    if (event->type != v1::BOOKMARK) fn_(event);
  }

 private:
  std::function<void(const CacheEventPtr&)> fn_;
};

// The workspace that labels on `object` point at, as a work-queue key; empty when none.
std::string OwnerKey(const google::protobuf::Message* object) {
  if (object == nullptr) return "";
  const auto& labels = Metadata(*object).labels();
  auto name = labels.find(kLabelWorkspace);
  auto ns = labels.find(kLabelWorkspaceNamespace);
  if (name == labels.end() || ns == labels.end()) return "";
  return NamespacedKey(ns->second, name->second);
}

}  // namespace

absl::Status ServerApp::StartControllers(const ServerOptions& options) {
  Clock* clock = clock_;
  // With leader election every reconcile writes under the leader's fence.
  auto fenced = [this](ControllerOptions o) {
    if (!elector_) return o;
    o.around_reconcile = [this](const std::function<void()>& reconcile) {
      std::shared_ptr<const store::WriteFence> fence;
      {
        absl::MutexLock lock(&fence_mu_);
        fence = fence_;
      }
      store::ScopedWriteFence scope(fence.get());
      reconcile();
    };
    return o;
  };
  ControllerOptions workspace_opts;
  workspace_opts.workers = std::max(1, options.workspace_workers);
  WorkspaceControllerOptions ws;
  ws.validation = validator_->options();
  ws.claim_max_attempts = options.claim_max_attempts;
  {
    auto& ready = prometheus::BuildHistogram()
                      .Name("kaito_workspace_ready_seconds")
                      .Help("From a workspace's creation to its first Ready (inference) or "
                            "Succeeded (tuning).")
                      .Register(*prometheus_);
    const prometheus::Histogram::BucketBoundaries buckets = {
        1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400, 43200, 86400};
    prometheus::Histogram* inference = &ready.Add({{"kind", "inference"}}, buckets);
    prometheus::Histogram* tuning = &ready.Add({{"kind", "tuning"}}, buckets);
    ws.on_first_ready = [inference, tuning](const v1::Workspace& w, double seconds) {
      (w.has_tuning() ? tuning : inference)->Observe(seconds);
    };
    auto& unavailable = prometheus::BuildCounter()
                            .Name("kaito_offerings_marked_unavailable_total")
                            .Help("Offerings capacity fallback marked unavailable after a "
                                  "capacity or quota failure.")
                            .Register(*prometheus_);
    ws.on_offering_unavailable = [&unavailable](const presets::Offering& o) {
      unavailable
          .Add({{"instance_type", o.instance_type},
                {"capacity_type", o.capacity_type}})
          .Increment();
    };
  }
  workspace_reconciler_ = std::make_unique<WorkspaceReconciler>(
      objects_, catalog_.get(), validation_context_.get(), event_recorder_.get(), clock, ws);
  workspace_controller_ = std::make_unique<Controller>("workspace", workspace_reconciler_.get(),
                                                       clock, fenced(workspace_opts), prometheus_.get());

  if (provisioner_ != nullptr) {
    NodeClaimControllerOptions claims;
    claims.max_attempts = options.claim_max_attempts;
    claims.retry_base = options.claim_retry_base;
    claims.poll_interval = options.claim_poll_interval;
    claims.initialization_timeout = options.node_initialization_timeout;
    claims.expected_gpus = [catalog = catalog_.get(),
                            cloud = options.cloud](const std::string& type) {
      const presets::Sku* sku = catalog->FindSku(cloud, type);
      return sku == nullptr ? 0 : sku->gpu_count;
    };
    claims.agent_server = options.advertise_address.empty()
                              ? "127.0.0.1:" + std::to_string(grpc_port_)
                              : options.advertise_address;
    nodeclaim_reconciler_ =
        std::make_unique<NodeClaimReconciler>(objects_, provisioner_, event_recorder_.get(), clock,
                                              claims, [this](const std::string& key) {
                                                if (nodeclaim_controller_)
                                                  nodeclaim_controller_->Enqueue(key);
                                              });
    nodeclaim_controller_ = std::make_unique<Controller>(
        "nodeclaim", nodeclaim_reconciler_.get(), clock, fenced(ControllerOptions{}), prometheus_.get());
  }
  NodeLifecycleOptions lifecycle;
  lifecycle.lost_grace = options.node_lost_grace;
  node_lifecycle_reconciler_ = std::make_unique<NodeLifecycleReconciler>(
      objects_, leases_.get(), event_recorder_.get(), clock, lifecycle);
  ControllerOptions two;
  two.workers = 2;
  node_lifecycle_controller_ = std::make_unique<Controller>(
      "node-lifecycle", node_lifecycle_reconciler_.get(), clock, fenced(two), prometheus_.get());
  GarbageCollectorOptions gc;
  gc.event_ttl = options.event_ttl;
  prometheus::Counter* orphans = &prometheus::BuildCounter()
                                      .Name("kaito_orphaned_machines_collected_total")
                                      .Help("Machines the provisioner listed with no node claim, "
                                            "deleted by the garbage collector.")
                                      .Register(*prometheus_)
                                      .Add({});
  gc.on_orphan_collected = [orphans] { orphans->Increment(); };
  garbage_collector_ = std::make_unique<GarbageCollector>(objects_, clock, gc, provisioner_);
  ControllerOptions one;
  one.workers = 1;
  gc_controller_ = std::make_unique<Controller>("garbage-collector", garbage_collector_.get(),
                                                clock, fenced(one), prometheus_.get());
  lease_transitions_.store(node_lifecycle_controller_.get());
  WatchForControllers();
  for (Controller* c : Controllers()) {
    // Without a lease nothing is reconciled until the election is won.
    if (elector_) c->Pause();
    c->Start();
  }
  gc_controller_->EnqueueAfter("sweep", absl::Seconds(10));
  if (elector_) elector_->Start();
  return absl::OkStatus();
}

std::vector<Controller*> ServerApp::Controllers() {
  std::vector<Controller*> all;
  for (Controller* c : {workspace_controller_.get(), nodeclaim_controller_.get(),
                        node_lifecycle_controller_.get(), gc_controller_.get()}) {
    if (c) all.push_back(c);
  }
  return all;
}

void ServerApp::StartedLeading(const store::WriteFence& fence) {
  {
    absl::MutexLock lock(&fence_mu_);
    fence_ = std::make_shared<const store::WriteFence>(fence);
  }
  // Node leases count from the takeover; every object is looked at once (the previous
  // leader's requeues died with its term).
  leases_->Restart();
  for (Controller* c : Controllers()) c->Resume();
  for (const CachedObject& c : workspace_cache_->List("/workspaces/", "", 0, nullptr).items) {
    const auto& meta = Metadata(*c.object);
    workspace_controller_->Enqueue(NamespacedKey(meta.namespace_(), meta.name()));
  }
  if (nodeclaim_controller_) {
    for (const CachedObject& c : nodeclaim_cache_->List("/nodeclaims/", "", 0, nullptr).items) {
      nodeclaim_controller_->Enqueue(Metadata(*c.object).name());
    }
  }
  for (const CachedObject& c : node_cache_->List("/nodes/", "", 0, nullptr).items) {
    node_lifecycle_controller_->Enqueue(Metadata(*c.object).name());
  }
  gc_controller_->Enqueue("sweep");
}

bool ServerApp::Leading() const {
  return elector_ ? elector_->leading() : options_controllers_;
}

std::string ServerApp::Leader() const {
  if (elector_) return elector_->leader();
  return Leading() ? replica_name_ : "";
}

int64_t ServerApp::LeaderTransitions() const {
  if (elector_) return elector_->transitions();
  return Leading() ? 1 : 0;
}

void ServerApp::StoppedLeading() {
  // Returns once no reconcile is in progress; the fence covers one that outlives the lease.
  for (Controller* c : Controllers()) c->Pause();
  absl::MutexLock lock(&fence_mu_);
  fence_.reset();
}

void ServerApp::WatchForControllers() {
  auto watch = [this](ObjectCache* cache, const std::string& prefix,
                      std::function<void(const CacheEventPtr&)> fn) {
    auto sink = std::make_unique<FuncSink>(std::move(fn));
    auto handle = cache->Watch(prefix, -1, sink.get(), false);
    if (!handle.ok()) {
      spdlog::critical("controllers: cannot watch {}: {}", prefix, handle.status().ToString());
      return;
    }
    controller_sinks_.push_back(std::move(sink));
    controller_watches_.push_back(std::move(*handle));
  };
  Controller* workspaces = workspace_controller_.get();
  Controller* claims = nodeclaim_controller_.get();
  Controller* lifecycle = node_lifecycle_controller_.get();
  watch(workspace_cache_.get(), "/workspaces/", [workspaces](const CacheEventPtr& e) {
    const auto& meta = Metadata(*e->object);
    workspaces->Enqueue(NamespacedKey(meta.namespace_(), meta.name()));
  });
  // Claims and workloads wake their workspace; claims also their own controller.
  watch(nodeclaim_cache_.get(), "/nodeclaims/", [workspaces, claims](const CacheEventPtr& e) {
    if (claims) claims->Enqueue(Metadata(*e->object).name());
    if (std::string key = OwnerKey(e->object.get()); !key.empty()) workspaces->Enqueue(key);
  });
  watch(workload_cache_.get(), "/workloads/", [workspaces](const CacheEventPtr& e) {
    if (std::string key = OwnerKey(e->object.get()); !key.empty()) workspaces->Enqueue(key);
  });
  // A node wakes its lifecycle, its claim, and every workspace whose selector it matches
  // (now or before).
  ObjectCache* ws_cache = workspace_cache_.get();
  watch(node_cache_.get(), "/nodes/",
        [workspaces, claims, lifecycle, ws_cache](const CacheEventPtr& e) {
          const auto& node = static_cast<const v1::Node&>(*e->object);
          lifecycle->Enqueue(node.metadata().name());
          if (claims && !node.spec().node_claim().empty())
            claims->Enqueue(node.spec().node_claim());
          const auto* previous = static_cast<const v1::Node*>(e->previous.get());
          for (const CachedObject& c :
               ws_cache
                   ->List("/workspaces/", "", 0,
                          [&](const google::protobuf::Message& m) {
                            const auto& w = static_cast<const v1::Workspace&>(m);
                            FieldErrors ignored;
                            LabelSelectorMatcher selector = LabelSelectorMatcher::FromProto(
                                w.resource().label_selector(), "resource.labelSelector", ignored);
                            return selector.Matches(node.metadata().labels()) ||
                                   (previous != nullptr &&
                                    selector.Matches(previous->metadata().labels()));
                          })
                   .items) {
            const auto& meta = Metadata(*c.object);
            workspaces->Enqueue(NamespacedKey(meta.namespace_(), meta.name()));
          }
        });
}

void ServerApp::Wait() {
  if (server_) server_->Wait();
}

void ServerApp::UpdateServingStatus() {
  absl::MutexLock lock(&health_mu_);
  if (health_server_ == nullptr) return;
  health_server_->GetHealthCheckService()->SetServingStatus(!draining_.load() &&
                                                            store_writable_.load());
}

void ServerApp::Drain() {
  if (draining_.exchange(true)) return;
  UpdateServingStatus();
}

void ServerApp::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  Drain();
  // Controllers first: nothing new is asked of the store, the provisioner or the agents.
  // A leader steps down and revokes its lease, so that another replica takes over at once.
  if (elector_) elector_->Stop();
  for (Controller* c : Controllers()) c->Stop();
  node_lease_watch_.reset();
  controller_watches_.clear();
  lease_transitions_.store(nullptr);
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  // After the server: its SimulatedCloudService uses the provider until then.
  simulated_provider_.reset();
  simulated_fleet_.reset();
  if (session_registry_) session_registry_->Stop();
  metrics_.reset();
}

ServerApp::~ServerApp() {
  Shutdown();
  {
    absl::MutexLock lock(&health_mu_);
    health_server_ = nullptr;
  }
  server_.reset();
  // The caches stop following the store, the store drains its queued writes (their
  // completions may still read the caches, and chain writes that now fail UNAVAILABLE),
  // and only then do the caches go.
  for (ObjectCache* c :
       {workspace_cache_.get(), configmap_cache_.get(), secret_cache_.get(), node_cache_.get(),
        nodeclaim_cache_.get(), workload_cache_.get(), event_cache_.get()}) {
    if (c) c->Detach();
  }
  store_.reset();
  workspace_cache_.reset();
  configmap_cache_.reset();
  secret_cache_.reset();
  node_cache_.reset();
  nodeclaim_cache_.reset();
  workload_cache_.reset();
  event_cache_.reset();
}

}  // namespace kaito::server
