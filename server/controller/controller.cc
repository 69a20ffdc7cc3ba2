#include "server/controller/controller.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/container/flat_hash_map.h"

namespace kaito::server {

// The families of one registry. prometheus-cpp families and metrics are thread-safe; they
// live in the registry, so the registry must outlive every `ControllerMetrics` built on it.
class ControllerMetrics {
 public:
  explicit ControllerMetrics(prometheus::Registry& registry)
      : depth_(prometheus::BuildGauge()
                   .Name("kaito_workqueue_depth")
                   .Help("Keys waiting in a controller's work queue.")
                   .Register(registry)),
        adds_(prometheus::BuildCounter()
                  .Name("kaito_workqueue_adds_total")
                  .Help("Adds that put a key in a controller's work queue.")
                  .Register(registry)),
        retries_(prometheus::BuildCounter()
                     .Name("kaito_workqueue_retries_total")
                     .Help("Delayed adds (retries and requeues) accepted by a work queue.")
                     .Register(registry)),
        queue_duration_(prometheus::BuildHistogram()
                            .Name("kaito_workqueue_queue_duration_seconds")
                            .Help("Seconds a key waited in a work queue before a worker got it.")
                            .Register(registry)),
        work_duration_(prometheus::BuildHistogram()
                           .Name("kaito_workqueue_work_duration_seconds")
                           .Help("Seconds a worker spent on a key, from Get to Done.")
                           .Register(registry)),
        reconciles_(prometheus::BuildCounter()
                        .Name("kaito_reconcile_total")
                        .Help("Reconciles by controller and result (success, requeue_after, "
                              "error).")
                        .Register(registry)),
        errors_(prometheus::BuildCounter()
                    .Name("kaito_reconcile_errors_total")
                    .Help("Reconciles that returned an error, by controller.")
                    .Register(registry)) {}

  // Returns the families of `registry`, registering them there on first use. While any
  // `ControllerMetrics` of a registry is alive, every caller gets that same one, so no
  // family is registered twice. The cache holds weak references only: a registry whose
  // controllers are all gone is never looked up again through a dangling pointer (a new
  // registry at the same address gets its own families).
  static std::shared_ptr<ControllerMetrics> For(prometheus::Registry* registry) {
    if (registry == nullptr) return nullptr;
    ABSL_CONST_INIT static absl::Mutex mu(absl::kConstInit);
    static auto* cache =
        new absl::flat_hash_map<prometheus::Registry*, std::weak_ptr<ControllerMetrics>>();
    absl::MutexLock lock(&mu);
    absl::erase_if(*cache, [](const auto& entry) { return entry.second.expired(); });
    std::weak_ptr<ControllerMetrics>& entry = (*cache)[registry];
    std::shared_ptr<ControllerMetrics> metrics = entry.lock();
    if (metrics == nullptr) {
      metrics = std::make_shared<ControllerMetrics>(*registry);
      entry = metrics;
    }
    return metrics;
  }

  WorkQueueMetrics ForQueue(const std::string& name) {
    const prometheus::Labels labels = {{"name", name}};
    // 10 µs to 1000 s, 1-2.5-5 steps below a second (where the targets are: an event to
    // its reconcile within 10 ms), coarser above: a wait or a reconcile can be anywhere.
    const prometheus::Histogram::BucketBoundaries buckets = {
        1e-5, 2.5e-5, 5e-5,  1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
        5e-2, 0.1,    0.25,  0.5,  1,      2.5,  5,    10,     30,   100,  1000};
    return WorkQueueMetrics{
        .depth = &depth_.Add(labels),
        .adds = &adds_.Add(labels),
        .retries = &retries_.Add(labels),
        .queue_duration = &queue_duration_.Add(labels, buckets),
        .work_duration = &work_duration_.Add(labels, buckets),
    };
  }
  prometheus::Counter* Reconciles(const std::string& controller, const std::string& result) {
    return &reconciles_.Add({{"controller", controller}, {"result", result}});
  }
  prometheus::Counter* Errors(const std::string& controller) {
    return &errors_.Add({{"controller", controller}});
  }

 private:
  prometheus::Family<prometheus::Gauge>& depth_;
  prometheus::Family<prometheus::Counter>& adds_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Family<prometheus::Histogram>& queue_duration_;
  prometheus::Family<prometheus::Histogram>& work_duration_;
  prometheus::Family<prometheus::Counter>& reconciles_;
  prometheus::Family<prometheus::Counter>& errors_;
};

namespace {

prometheus::Counter* ReconcileCounter(ControllerMetrics* metrics, const std::string& controller,
                                      const std::string& result) {
  return metrics == nullptr ? nullptr : metrics->Reconciles(controller, result);
}

void Increment(prometheus::Counter* counter) {
  if (counter != nullptr) counter->Increment();
}

}  // namespace

Controller::Controller(std::string name, Reconciler* reconciler, Clock* clock,
                       ControllerOptions options, prometheus::Registry* registry)
    : name_(std::move(name)),
      reconciler_(reconciler),
      options_(std::move(options)),
      metrics_(ControllerMetrics::For(registry)),
      reconcile_success_(ReconcileCounter(metrics_.get(), name_, "success")),
      reconcile_requeue_after_(ReconcileCounter(metrics_.get(), name_, "requeue_after")),
      reconcile_error_(ReconcileCounter(metrics_.get(), name_, "error")),
      reconcile_errors_(metrics_ == nullptr ? nullptr : metrics_->Errors(name_)),
      queue_(clock, options_.rate_limiter,
             metrics_ == nullptr ? WorkQueueMetrics{} : metrics_->ForQueue(name_)) {}

Controller::~Controller() { Stop(); }

void Controller::Start() {
  absl::MutexLock lock(&lifecycle_mu_);
  if (started_ || stopped_) return;
  started_ = true;
  const int workers = std::max(options_.workers, 1);
  workers_.reserve(workers);
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { RunWorker(); });
}

void Controller::Stop() {
  absl::MutexLock lock(&lifecycle_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    absl::MutexLock gate(&gate_mu_);
    stopping_ = true;
  }
  queue_.ShutDown();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
}

void Controller::Pause() {
  absl::MutexLock lock(&gate_mu_);
  paused_ = true;
  gate_mu_.Await(absl::Condition(this, &Controller::Idle));
}

void Controller::Resume() {
  absl::MutexLock lock(&gate_mu_);
  paused_ = false;
}

bool Controller::paused() {
  absl::MutexLock lock(&gate_mu_);
  return paused_;
}

void Controller::RunWorker() {
  while (std::optional<std::string> key = queue_.Get()) {
    {
      absl::MutexLock lock(&gate_mu_);
      gate_mu_.Await(absl::Condition(this, &Controller::MayReconcile));
      if (stopping_) {
        queue_.Done(*key);
        return;
      }
      ++active_;
    }
    if (options_.around_reconcile) {
      options_.around_reconcile([&] { ReconcileKey(*key); });
    } else {
      ReconcileKey(*key);
    }
    {
      absl::MutexLock lock(&gate_mu_);
      --active_;
    }
    queue_.Done(*key);
  }
}

void Controller::ReconcileKey(const std::string& key) {
  absl::StatusOr<ReconcileResult> result = reconciler_->Reconcile(key);
  if (!result.ok()) {
    Increment(reconcile_error_);
    Increment(reconcile_errors_);
    spdlog::warn("controller {}: reconcile {} failed (retry {}): {}", name_, key,
                 queue_.NumRequeues(key) + 1, result.status().ToString());
    queue_.AddRateLimited(key);
    return;
  }
  queue_.Forget(key);
  if (result->requeue_after > absl::ZeroDuration()) {
    Increment(reconcile_requeue_after_);
    queue_.AddAfter(key, result->requeue_after);
    return;
  }
  Increment(reconcile_success_);
}

}  // namespace kaito::server
