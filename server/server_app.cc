#include "server_app.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <spdlog/spdlog.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "store/memory_store.h"
#include "store/sqlite_store.h"

namespace kaito {
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

}  // namespace

absl::StatusOr<std::unique_ptr<ServerApp>> ServerApp::Start(const ServerOptions& options) {
  std::unique_ptr<ServerApp> app(new ServerApp());
  app->prometheus_ = std::make_shared<prometheus::Registry>();

  auto store = OpenStore(options);
  if (!store.ok()) return store.status();
  app->store_ = std::move(*store);

  app->workspace_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/workspaces/", &v1::Workspace::default_instance(), options.watch_history);
  app->configmap_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/configmaps/", &v1::ConfigMap::default_instance(), options.watch_history);
  app->secret_cache_ = std::make_unique<ObjectCache>(
      app->store_.get(), "/secrets/", &v1::Secret::default_instance(), options.watch_history);
  for (ObjectCache* cache :
       {app->workspace_cache_.get(), app->configmap_cache_.get(), app->secret_cache_.get()}) {
    if (absl::Status s = cache->Start(); !s.ok()) return s;
  }
  Clock* clock = RealClock::Get();
  app->workspaces_ = std::make_unique<ObjectRegistry<v1::Workspace>>(
      WorkspacePolicy(), app->store_.get(), app->workspace_cache_.get(), clock);
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
  app->system_service_ = std::make_unique<SystemGrpcService>(app->store_.get(), options.dev);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &app->grpc_port_);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.RegisterService(app->workspace_service_.get());
  builder.RegisterService(app->config_service_.get());
  builder.RegisterService(app->secret_service_.get());
  builder.RegisterService(app->system_service_.get());
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
  store_.reset();
}

}  // namespace kaito
