#include "server/server_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "server/store/memory_store.h"
#include "server/store/sqlite_store.h"
#include "presets/planner.h"

namespace kaito::server {
namespace {

// Reads store and cache figures at scrape time.
class StateCollector : public prometheus::Collectable {
 public:
  StateCollector(store::Store* store, std::vector<std::pair<std::string, ObjectCache*>> caches)
      : store_(store), caches_(std::move(caches)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    families.push_back(Gauge("kaito_store_revision", "The store's current revision.",
                             {{{}, static_cast<double>(store_->CurrentRevision())}}));
    families.push_back(Gauge("kaito_store_compacted_revision",
                             "Revisions up to this one have no watch history.",
                             {{{}, static_cast<double>(store_->CompactedRevision())}}));
    if (auto* sqlite = dynamic_cast<store::SqliteStore*>(store_)) {
      store::SqliteStoreStats s = sqlite->stats();
      families.push_back(Counter("kaito_store_commits_total",
                                 "Transactions committed by the store writer (group commits).",
                                 static_cast<double>(s.commits)));
      families.push_back(Counter("kaito_store_writes_total",
                                 "Writes made durable by the store writer.",
                                 static_cast<double>(s.writes)));
      families.push_back(Counter("kaito_store_failed_commits_total",
                                 "Transactions that failed and were rolled back.",
                                 static_cast<double>(s.failed_commits)));
    }
    std::vector<std::pair<prometheus::ClientMetric::Label, double>> objects, watchers;
    for (const auto& [kind, cache] : caches_) {
      objects.push_back({{"kind", kind}, static_cast<double>(cache->size())});
      watchers.push_back({{"kind", kind}, static_cast<double>(cache->watchers())});
    }
    families.push_back(Gauge("kaito_cache_objects", "Objects held by the cache, by kind.",
                             objects));
    families.push_back(Gauge("kaito_cache_watchers",
                             "Watch streams attached to the cache, by kind.", watchers));
    return families;
  }

 private:
  static prometheus::MetricFamily Gauge(
      const std::string& name, const std::string& help,
      const std::vector<std::pair<prometheus::ClientMetric::Label, double>>& values) {
    prometheus::MetricFamily f{name, help, prometheus::MetricType::Gauge, {}};
    for (const auto& [label, value] : values) {
      prometheus::ClientMetric m;
      if (!label.name.empty()) m.label.push_back(label);
      m.gauge.value = value;
      f.metric.push_back(m);
    }
    return f;
  }
  static prometheus::MetricFamily Counter(const std::string& name, const std::string& help,
                                          double value) {
    prometheus::MetricFamily f{name, help, prometheus::MetricType::Counter, {}};
    prometheus::ClientMetric m;
    m.counter.value = value;
    f.metric.push_back(m);
    return f;
  }

  store::Store* store_;
  std::vector<std::pair<std::string, ObjectCache*>> caches_;
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
    return absl::InvalidArgumentError(
        "--store " + options.store +
        ": the etcd backend is not part of this build yet; use --store sqlite");
  }
  return absl::InvalidArgumentError("--store: unknown backend \"" + options.store +
                                    "\" (sqlite, memory, etcd://HOST:PORT,...)");
}

// Validation reads nodes and config maps from the caches: no disk, no waiting.
class CacheValidationContext : public presets::ValidationContext {
 public:
  CacheValidationContext(ObjectCache* nodes, ObjectCache* configmaps)
      : nodes_(nodes), configmaps_(configmaps) {}

  std::vector<v1::Node> NodesMatching(const LabelSelectorMatcher& selector) override {
    std::vector<v1::Node> out;
    for (const CachedObject& c : nodes_->List("/nodes/", "", 0, [&](const auto& m) {
           return selector.Matches(Metadata(m).labels());
         }).items) {
      out.push_back(static_cast<const v1::Node&>(*c.object));
    }
    return out;
  }

  std::optional<v1::ConfigMap> GetConfigMap(const std::string& ns,
                                            const std::string& name) override {
    auto c = configmaps_->Get("/configmaps/" + ns + "/" + name);
    if (!c) return std::nullopt;
    return static_cast<const v1::ConfigMap&>(*c->object);
  }

 private:
  ObjectCache* nodes_;
  ObjectCache* configmaps_;
};

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

absl::StatusOr<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerOptions& options) {
  std::unique_ptr<ServerApp> app(new ServerApp());
  if (options.clock != nullptr) {
    app->clock_ = options.clock;
  } else {
    app->owned_clock_ = std::make_unique<RealClock>();
    app->clock_ = app->owned_clock_.get();
  }
  app->prometheus_ = std::make_shared<prometheus::Registry>();

  auto catalog = options.catalog_dir.empty()
                     ? presets::Catalog::Embedded()
                     : presets::Catalog::FromDirectory(options.catalog_dir);
  if (!catalog.ok()) return catalog.status();
  app->catalog_ = std::make_unique<presets::Catalog>(std::move(*catalog));
  if (options.cloud != "azure" && options.cloud != "aws" && options.cloud != "arc") {
    return absl::InvalidArgumentError("--cloud: unknown cloud provider \"" + options.cloud +
                                      "\" (azure, aws, arc)");
  }

  auto store = OpenStore(options);
  if (!store.ok()) return store.status();
  app->store_ = std::move(*store);

  app->workspace_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/workspaces/", &v1::Workspace::default_instance(), options.watch_history);
  app->configmap_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/configmaps/", &v1::ConfigMap::default_instance(), options.watch_history);
  app->secret_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/secrets/", &v1::Secret::default_instance(), options.watch_history);
  app->node_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/nodes/", &v1::Node::default_instance(), options.watch_history);
  for (ObjectCache* cache : {app->workspace_cache_.get(), app->configmap_cache_.get(),
                             app->secret_cache_.get(), app->node_cache_.get()}) {
    if (absl::Status s = cache->Start(); !s.ok()) return s;
  }
  Clock* clock = app->clock_;
  presets::ValidationOptions validation;
  validation.node_auto_provisioning = options.dev || !options.provisioner.empty();
  validation.cloud = options.cloud;
  validation.vllm_default = options.gate_vllm;
  validation.enable_mig = options.gate_mig;
  validation.enable_accelerator = options.gate_accelerator;
  app->validation_context_ = std::make_unique<CacheValidationContext>(
      app->node_cache_.get(), app->configmap_cache_.get());
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
  app->secrets_ = std::make_unique<ObjectRegistry<v1::Secret>>(
      SecretPolicy(), app->store_.get(), app->secret_cache_.get(), clock);

  app->rpc_metrics_ = std::make_unique<RpcMetrics>(*app->prometheus_);
  app->workspace_service_ =
      std::make_unique<WorkspaceGrpcService>(app->workspaces_.get(), app->rpc_metrics_.get());
  app->config_service_ =
      std::make_unique<ConfigGrpcService>(app->configmaps_.get(), app->rpc_metrics_.get());
  app->secret_service_ =
      std::make_unique<SecretGrpcService>(app->secrets_.get(), app->rpc_metrics_.get());
  app->workspace_service_->set_watch_backlog(options.watch_backlog);
  app->workspace_service_->set_planner(
      [catalog = app->catalog_.get(), validation, context = app->validation_context_.get()](
          const v1::Workspace& ws) {
        return presets::PlanWorkspace(*catalog, validation, *context, ws);
      });
  app->system_service_ = std::make_unique<SystemGrpcService>(app->store_.get(), options.dev);
  app->preset_service_ = std::make_unique<PresetGrpcService>(app->catalog_.get(), options.cloud);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &app->grpc_port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(app->workspace_service_.get());
  builder.RegisterService(app->config_service_.get());
  builder.RegisterService(app->secret_service_.get());
  builder.RegisterService(app->system_service_.get());
  builder.RegisterService(app->preset_service_.get());
  app->server_ = builder.BuildAndStart();
  if (!app->server_ || app->grpc_port_ == 0) {
    return absl::UnavailableError("cannot listen for gRPC on " + options.listen);
  }
  if (!options.metrics_listen.empty()) {
    auto state = std::make_shared<StateCollector>(
        app->store_.get(), std::vector<std::pair<std::string, ObjectCache*>>{
                               {"workspace", app->workspace_cache_.get()},
                               {"configmap", app->configmap_cache_.get()},
                               {"secret", app->secret_cache_.get()}});
    auto metrics =
        MetricsServer::Start(options.metrics_listen, {app->prometheus_, state}, nullptr);
    if (!metrics.ok()) return metrics.status();
    app->metrics_ = std::move(*metrics);
  }
  return app;
}

void ServerApp::Wait() {
  if (server_) server_->Wait();
}

void ServerApp::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  metrics_.reset();
}

ServerApp::~ServerApp() {
  Shutdown();
  server_.reset();
  // Caches detach from the store before it closes.
  workspace_cache_.reset();
  configmap_cache_.reset();
  secret_cache_.reset();
  node_cache_.reset();
  store_.reset();
}

}  // namespace kaito::server
