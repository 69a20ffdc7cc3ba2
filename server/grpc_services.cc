#include "grpc_services.h"

#include <spdlog/spdlog.h>

#include <deque>
#include <optional>

#include "common/version.h"

namespace kaito {
namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// Finishes a unary call and records it. Cheap to copy into completion callbacks.
class UnaryCall {
 public:
  UnaryCall(CallbackServerContext* ctx, RpcMetrics::Method* method)
      : reactor_(ctx->DefaultReactor()), method_(method), start_(absl::Now()) {}

  ServerUnaryReactor* reactor() const { return reactor_; }

  ServerUnaryReactor* Finish(const absl::Status& status) const {
    grpc::Status g = ToGrpcStatus(status);
    if (method_) method_->Record(g, absl::ToDoubleSeconds(absl::Now() - start_));
    reactor_->Finish(g);
    return reactor_;
  }

 private:
  ServerUnaryReactor* reactor_;
  RpcMetrics::Method* method_;
  absl::Time start_;
};

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

// Streams workspace events from the cache to one client. Owns its cache registration;
// deletes itself in OnDone.
class WorkspaceWatchReactor : public grpc::ServerWriteReactor<v1::WorkspaceEvent>,
                              public CacheSink {
 public:
  WorkspaceWatchReactor(ObjectRegistry<v1::Workspace>* registry, RpcMetrics* metrics,
                        size_t max_backlog, const v1::WatchWorkspacesRequest& request)
      : metrics_(metrics), max_backlog_(max_backlog), name_(request.name()) {
    if (metrics_) metrics_->open_watches().Increment();
    auto selector = LabelSelectorMatcher::Parse(request.label_selector());
    if (!selector.ok()) {
      FinishNow(selector.status());
      return;
    }
    selector_ = std::move(*selector);
    auto revision = ObjectRegistry<v1::Workspace>::ParseWatchRevision(request.resource_version());
    if (!revision.ok()) {
      FinishNow(revision.status());
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      initial_done_ = *revision >= 0;
    }
    std::string ns = request.namespace_();
    // With no resourceVersion the cache sends the initial state and then a BOOKMARK at
    // the revision it reflects, in order, before any live event.
    auto watch = registry->cache()->Watch(registry->Prefix(ns), *revision, this,
                                          /*bookmark=*/*revision < 0);
    if (!watch.ok()) {
      FinishNow(watch.status());
      return;
    }
    absl::MutexLock lock(&mu_);
    watch_ = std::move(*watch);
  }

  void OnEvent(const CacheEventPtr& event) override {
    CacheEventPtr send = Filter(event);
    if (!send) return;
    absl::MutexLock lock(&mu_);
    EnqueueLocked(send);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      // The client is gone; OnCancel or OnDone follows.
      RequestFinishLocked(grpc::Status::CANCELLED);
    }
    if (finish_status_ && !finish_called_) {
      FinishLocked();
      return;
    }
    WriteNextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    std::unique_ptr<CacheWatch> watch;
    {
      absl::MutexLock lock(&mu_);
      watch = std::move(watch_);
    }
    watch.reset();  // Detaches from the cache; no OnEvent after this.
    if (metrics_) metrics_->open_watches().Decrement();
    delete this;
  }

 private:
  bool Matches(const google::protobuf::Message* object) const {
    if (object == nullptr) return false;
    const auto& meta = Metadata(*object);
    return (name_.empty() || meta.name() == name_) && selector_.Matches(meta.labels());
  }

  // Applies the name and label filter. A modified object that starts matching is sent
  // as ADDED, one that stops matching as DELETED, as Kubernetes' filtered watches do.
  CacheEventPtr Filter(const CacheEventPtr& event) const {
    if (event->type == v1::BOOKMARK) return event;
    const bool now = Matches(event->object.get());
    if (event->type != v1::MODIFIED || !event->previous) return now ? event : nullptr;
    const bool before = Matches(event->previous.get());
    if (now == before) return now ? event : nullptr;
    auto changed = std::make_shared<CacheEvent>(*event);
    changed->type = now ? v1::ADDED : v1::DELETED;
    return changed;
  }

  void FinishNow(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(ToGrpcStatus(status));
  }

  // The stream ends with `status`: no more events are queued, and Finish is called
  // exactly once, never while a write is in flight (then OnWriteDone calls it).
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

  void EnqueueLocked(const CacheEventPtr& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_status_) return;
    // The initial state (before the bookmark) is exempt from the backlog limit: it is
    // bounded by the number of objects, and its events are not in revision order, so
    // resuming from the middle of it would skip objects.
    if (event->type == v1::BOOKMARK) initial_done_ = true;
    if (initial_done_ && queue_.size() >= max_backlog_) {
      RequestFinishLocked(grpc::Status(grpc::StatusCode::ABORTED,
                                       "watch fell behind; resume from resourceVersion " +
                                           std::to_string(last_sent_)));
      return;
    }
    queue_.push_back(event);
    if (!writing_) WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finish_status_ || queue_.empty()) return;
    CacheEventPtr event = std::move(queue_.front());
    queue_.pop_front();
    current_.Clear();
    current_.set_type(event->type);
    current_.set_resource_version(std::to_string(event->revision));
    if (event->object) {
      *current_.mutable_object() = static_cast<const v1::Workspace&>(*event->object);
    }
    last_sent_ = event->revision;
    writing_ = true;
    StartWrite(&current_);
  }

  RpcMetrics* metrics_;
  const size_t max_backlog_;
  const std::string name_;
  LabelSelectorMatcher selector_;
  absl::Mutex mu_;
  std::unique_ptr<CacheWatch> watch_ ABSL_GUARDED_BY(mu_);
  std::deque<CacheEventPtr> queue_ ABSL_GUARDED_BY(mu_);
  v1::WorkspaceEvent current_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // Set once the stream is to end; Finish is called with it when no write is in flight.
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  // Set by the bookmark that ends the initial state, or at once for a resumed watch.
  bool initial_done_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_sent_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

RpcMetrics::RpcMetrics(prometheus::Registry& registry)
    : handled_(prometheus::BuildCounter()
                   .Name("kaito_grpc_server_handled_total")
                   .Help("RPCs completed by the server, by method and status code.")
                   .Register(registry)),
      latency_(prometheus::BuildHistogram()
                   .Name("kaito_grpc_server_handling_seconds")
                   .Help("Time from receiving a unary RPC to sending its reply.")
                   .Register(registry)) {
  open_watches_ = &prometheus::BuildGauge()
                       .Name("kaito_watch_streams_open")
                       .Help("Watch streams currently open.")
                       .Register(registry)
                       .Add({});
}

RpcMetrics::Method* RpcMetrics::ForMethod(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto& slot = methods_[name];
  if (!slot) {
    slot = std::make_unique<Method>();
    slot->name_ = name;
    slot->handled_ = &handled_;
    slot->latency_ = &latency_.Add(
        {{"method", name}},
        prometheus::Histogram::BucketBoundaries{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5});
  }
  return slot.get();
}

void RpcMetrics::Method::Record(const grpc::Status& status, double seconds) {
  static const char* kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                 "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                 "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
                                 "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  int code = static_cast<int>(status.error_code());
  if (code < 0 || code > 16) code = 2;  // UNKNOWN
  prometheus::Counter* counter = by_code_[code].load(std::memory_order_acquire);
  if (counter == nullptr) {
    absl::MutexLock lock(&mu_);
    counter = by_code_[code].load(std::memory_order_relaxed);
    if (counter == nullptr) {
      counter = &handled_->Add({{"method", name_}, {"code", kCodes[code]}});
      by_code_[code].store(counter, std::memory_order_release);
    }
  }
  counter->Increment();
  latency_->Observe(seconds);
}

// --- Workspaces ------------------------------------------------------------------------

ServerUnaryReactor* WorkspaceGrpcService::CreateWorkspace(
    CallbackServerContext* ctx, const v1::CreateWorkspaceRequest* request,
    v1::CreateWorkspaceResponse* response) {
  using W = v1::Workspace;
  return Write<W>(
      UnaryCall(ctx, m_create_workspace_), response,
      [planner = request->dry_run() ? planner_ : nullptr](v1::CreateWorkspaceResponse& r,
                                                          WriteResult<W>& w) {
        if (planner) *r.mutable_plan() = planner(w.object);
        *r.mutable_workspace() = std::move(w.object);
        for (auto& warning : w.warnings) r.add_warnings(std::move(warning));
      },
      [&](WriteDone<W> done) {
        registry_->Create(request->workspace(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* WorkspaceGrpcService::GetWorkspace(CallbackServerContext* ctx,
                                                       const v1::GetWorkspaceRequest* request,
                                                       v1::Workspace* response) {
  return GetInto(UnaryCall(ctx, m_get_workspace_), registry_, request->namespace_(),
                 request->name(), response);
}

ServerUnaryReactor* WorkspaceGrpcService::ListWorkspaces(
    CallbackServerContext* ctx, const v1::ListWorkspacesRequest* request,
    v1::ListWorkspacesResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_workspaces_), registry_, request->namespace_(),
                  request->label_selector(), request->page_size(), request->page_token(),
                  response);
}

ServerUnaryReactor* WorkspaceGrpcService::UpdateWorkspace(
    CallbackServerContext* ctx, const v1::UpdateWorkspaceRequest* request,
    v1::UpdateWorkspaceResponse* response) {
  using W = v1::Workspace;
  return Write<W>(
      UnaryCall(ctx, m_update_workspace_), response,
      [planner = request->dry_run() ? planner_ : nullptr](v1::UpdateWorkspaceResponse& r,
                                                          WriteResult<W>& w) {
        if (planner) *r.mutable_plan() = planner(w.object);
        *r.mutable_workspace() = std::move(w.object);
        for (auto& warning : w.warnings) r.add_warnings(std::move(warning));
      },
      [&](WriteDone<W> done) {
        registry_->Update(request->workspace(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* WorkspaceGrpcService::DeleteWorkspace(
    CallbackServerContext* ctx, const v1::DeleteWorkspaceRequest* request,
    v1::DeleteWorkspaceResponse* response) {
  using W = v1::Workspace;
  return Write<W>(
      UnaryCall(ctx, m_delete_workspace_), response,
      [](v1::DeleteWorkspaceResponse& r, WriteResult<W>& w) {
        *r.mutable_workspace() = std::move(w.object);
        r.set_deleted(w.deleted);
      },
      [&](WriteDone<W> done) {
        registry_->Delete(request->namespace_(), request->name(), request->resource_version(),
                          std::move(done));
      });
}

grpc::ServerWriteReactor<v1::WorkspaceEvent>* WorkspaceGrpcService::WatchWorkspaces(
    CallbackServerContext* ctx, const v1::WatchWorkspacesRequest* request) {
  return new WorkspaceWatchReactor(registry_, metrics_, watch_backlog_, *request);
}

// --- ConfigMaps ------------------------------------------------------------------------

ServerUnaryReactor* ConfigGrpcService::CreateConfigMap(CallbackServerContext* ctx,
                                                       const v1::WriteConfigMapRequest* request,
                                                       v1::ConfigMap* response) {
  using C = v1::ConfigMap;
  return Write<C>(
      UnaryCall(ctx, m_create_config_map_), response,
      [](C& r, WriteResult<C>& w) { r = std::move(w.object); },
      [&](WriteDone<C> done) {
        registry_->Create(request->config_map(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* ConfigGrpcService::GetConfigMap(CallbackServerContext* ctx,
                                                    const v1::ObjectKey* request,
                                                    v1::ConfigMap* response) {
  return GetInto(UnaryCall(ctx, m_get_config_map_), registry_, request->namespace_(),
                 request->name(), response);
}

ServerUnaryReactor* ConfigGrpcService::ListConfigMaps(CallbackServerContext* ctx,
                                                      const v1::ListRequest* request,
                                                      v1::ListConfigMapsResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_config_maps_), registry_, request->namespace_(),
                  request->label_selector(), request->page_size(), request->page_token(),
                  response);
}

ServerUnaryReactor* ConfigGrpcService::UpdateConfigMap(CallbackServerContext* ctx,
                                                       const v1::WriteConfigMapRequest* request,
                                                       v1::ConfigMap* response) {
  using C = v1::ConfigMap;
  return Write<C>(
      UnaryCall(ctx, m_update_config_map_), response,
      [](C& r, WriteResult<C>& w) { r = std::move(w.object); },
      [&](WriteDone<C> done) {
        registry_->Update(request->config_map(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* ConfigGrpcService::DeleteConfigMap(CallbackServerContext* ctx,
                                                       const v1::DeleteRequest* request,
                                                       v1::DeleteResponse* response) {
  return DeleteInto(UnaryCall(ctx, m_delete_config_map_), registry_, request, response);
}

// --- Secrets ---------------------------------------------------------------------------

ServerUnaryReactor* SecretGrpcService::CreateSecret(CallbackServerContext* ctx,
                                                    const v1::WriteSecretRequest* request,
                                                    v1::Secret* response) {
  using S = v1::Secret;
  return Write<S>(
      UnaryCall(ctx, m_create_secret_), response,
      [](S& r, WriteResult<S>& w) { r = std::move(w.object); },
      [&](WriteDone<S> done) {
        registry_->Create(request->secret(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* SecretGrpcService::GetSecret(CallbackServerContext* ctx,
                                                 const v1::ObjectKey* request,
                                                 v1::Secret* response) {
  return GetInto(UnaryCall(ctx, m_get_secret_), registry_, request->namespace_(),
                 request->name(), response);
}

ServerUnaryReactor* SecretGrpcService::ListSecrets(CallbackServerContext* ctx,
                                                   const v1::ListRequest* request,
                                                   v1::ListSecretsResponse* response) {
  return ListInto(UnaryCall(ctx, m_list_secrets_), registry_, request->namespace_(),
                  request->label_selector(), request->page_size(), request->page_token(),
                  response);
}

ServerUnaryReactor* SecretGrpcService::UpdateSecret(CallbackServerContext* ctx,
                                                    const v1::WriteSecretRequest* request,
                                                    v1::Secret* response) {
  using S = v1::Secret;
  return Write<S>(
      UnaryCall(ctx, m_update_secret_), response,
      [](S& r, WriteResult<S>& w) { r = std::move(w.object); },
      [&](WriteDone<S> done) {
        registry_->Update(request->secret(), request->dry_run(), std::move(done));
      });
}

ServerUnaryReactor* SecretGrpcService::DeleteSecret(CallbackServerContext* ctx,
                                                    const v1::DeleteRequest* request,
                                                    v1::DeleteResponse* response) {
  return DeleteInto(UnaryCall(ctx, m_delete_secret_), registry_, request, response);
}

// --- Presets ---------------------------------------------------------------------------

namespace {

v1::ModelInfo ToModelInfo(const presets::ModelPreset& m) {
  v1::ModelInfo info;
  info.set_name(m.name);
  info.set_id(m.id);
  for (const auto& a : m.aliases) info.add_aliases(a);
  info.set_weights(presets::FormatGi(m.weights_bytes));
  info.set_disk(presets::FormatGi(m.disk_bytes));
  info.set_context_length(m.context_length);
  info.set_bytes_per_token(m.bytes_per_token);
  info.set_architecture(m.architecture);
  info.set_quantization(m.quantization);
  info.set_dtype(m.dtype);
  if (m.vllm) info.add_runtimes("vllm");
  if (m.transformers) info.add_runtimes("transformers");
  info.set_distributed(m.distributed);
  info.set_gated(m.gated);
  info.set_deprecated(m.deprecated);
  if (m.tuning) {
    for (const auto& method : m.tuning->methods) info.add_tuning_methods(method);
    info.set_tuning_disk(presets::FormatGi(m.tuning->disk_bytes));
    info.set_tuning_model_size(presets::FormatGi(m.tuning->model_bytes));
  }
  info.set_tool_call_parser(m.tool_call_parser);
  info.set_reasoning_parser(m.reasoning_parser);
  info.set_chat_template(m.chat_template);
  return info;
}

v1::SkuInfo ToSkuInfo(const presets::Sku& s) {
  v1::SkuInfo info;
  info.set_name(s.name);
  info.set_cloud(s.cloud);
  info.set_gpu_model(s.gpu_model);
  info.set_gpu_count(s.gpu_count);
  info.set_gpu_memory(presets::FormatGi(s.gpu_memory_bytes));
  info.set_gpu_memory_per_gpu(presets::FormatGi(s.PerGpuBytes()));
  info.set_nvme(s.nvme);
  info.set_compute_capability(s.compute_capability);
  info.set_retired(s.retired);
  return info;
}

grpc::ServerUnaryReactor* FinishOk(CallbackServerContext* ctx) {
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace

ServerUnaryReactor* PresetGrpcService::ListModels(CallbackServerContext* ctx,
                                                  const v1::ListModelsRequest*,
                                                  v1::ListModelsResponse* response) {
  for (const auto& m : catalog_->models()) *response->add_models() = ToModelInfo(m);
  return FinishOk(ctx);
}

ServerUnaryReactor* PresetGrpcService::GetModel(CallbackServerContext* ctx,
                                                const v1::GetModelRequest* request,
                                                v1::ModelInfo* response) {
  const presets::ModelPreset* m = catalog_->FindModel(request->name());
  auto* reactor = ctx->DefaultReactor();
  if (m == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "presets \"" + request->name() + "\" not found"));
    return reactor;
  }
  *response = ToModelInfo(*m);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

ServerUnaryReactor* PresetGrpcService::ListSkus(CallbackServerContext* ctx,
                                                const v1::ListSkusRequest* request,
                                                v1::ListSkusResponse* response) {
  const std::string cloud = request->cloud().empty() ? cloud_ : request->cloud();
  for (const auto& s : catalog_->skus()) {
    if (cloud != "all" && s.cloud != cloud) continue;
    *response->add_skus() = ToSkuInfo(s);
  }
  return FinishOk(ctx);
}

ServerUnaryReactor* PresetGrpcService::GetSku(CallbackServerContext* ctx,
                                              const v1::GetSkuRequest* request,
                                              v1::SkuInfo* response) {
  const std::string cloud = request->cloud().empty() ? cloud_ : request->cloud();
  const presets::Sku* sku = catalog_->FindSku(cloud, request->name());
  auto* reactor = ctx->DefaultReactor();
  if (sku == nullptr) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "skus \"" + request->name() + "\" not found in " + cloud));
    return reactor;
  }
  *response = ToSkuInfo(*sku);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

// --- System ----------------------------------------------------------------------------

ServerUnaryReactor* SystemGrpcService::GetVersion(CallbackServerContext* ctx,
                                                  const v1::GetVersionRequest*,
                                                  v1::VersionInfo* response) {
  response->set_version(Version());
  response->set_store(store_->Backend());
  response->set_resource_version(std::to_string(store_->CurrentRevision()));
  response->set_dev_mode(dev_mode_);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace kaito
