// kaito-provisioner: turns node claims into GPU machines (ProvisionerService). With
// `--provider simulated` the cloud is a simulation: nothing is created, and an in-process
// simulated agent registers each "created" node with the control plane.
#include <google/protobuf/stubs/logging.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include "absl/time/time.h"
#include "agent/simulated_fleet.h"
#include "common/clock.h"
#include "common/daemon.h"
#include "common/grpc_server.h"
#include "common/http/http_client.h"
#include "common/liveness.h"
#include "common/logging.h"
#include "common/metric_families.h"
#include "common/metrics_server.h"
#include "common/reflection_v1.h"
#include "common/rpc_metrics.h"
#include "common/tls.h"
#include "common/version.h"
#include "presets/catalog.h"
#include "provisioner/azure/arm_client.h"
#include "provisioner/azure/azure_provider.h"
#include "provisioner/azure/credentials.h"
#include "provisioner/fleet_bootstrapper.h"
#include "provisioner/provider/simulated_provider.h"
#include "provisioner/provider/timed_provider.h"
#include "provisioner/provisioner_service.h"

namespace {

// `kaito_provisioner_nodes{phase}` (and, for Azure, the ARM client's counters), read
// from the provider at scrape time.
class ProviderCollector : public prometheus::Collectable {
 public:
  ProviderCollector(std::function<std::map<std::string, int>()> phases,
                    std::shared_ptr<kaito::provisioner::azure::ArmClient> arm,
                    std::shared_ptr<kaito::provisioner::azure::AzureCredential> credential)
      : phases_(std::move(phases)), arm_(std::move(arm)), credential_(std::move(credential)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<std::pair<kaito::MetricLabels, double>> phases;
    for (const auto& [phase, count] : phases_()) {
      phases.push_back({{{"phase", phase}}, static_cast<double>(count)});
    }
    std::vector<prometheus::MetricFamily> families = {kaito::GaugeFamily(
        "kaito_provisioner_nodes", "Node claims known to the provider, by phase.", phases)};
    if (arm_ != nullptr) {
      const kaito::provisioner::azure::ArmClientStats stats = arm_->stats();
      std::vector<std::pair<kaito::MetricLabels, double>> responses;
      for (const auto& [key, count] : stats.responses) {
        const size_t space = key.find(' ');
        responses.push_back({{{"method", key.substr(0, space)}, {"code", key.substr(space + 1)}},
                             static_cast<double>(count)});
      }
      families.push_back(kaito::CounterFamily(
          "kaito_provisioner_arm_responses_total",
          "Azure Resource Manager responses by method and HTTP status (error = no response).",
          responses));
      families.push_back(kaito::CounterFamily("kaito_provisioner_arm_retries_total",
                                              "ARM requests tried again (transient failures).",
                                              static_cast<double>(stats.retries)));
      families.push_back(kaito::CounterFamily("kaito_provisioner_arm_throttled_total",
                                              "ARM responses that were 429 (throttled).",
                                              static_cast<double>(stats.throttled)));
      families.push_back(
          kaito::GaugeFamily("kaito_provisioner_arm_requests",
                             "ARM requests waiting for the rate limit, and in flight.",
                             {{{{"state", "queued"}}, static_cast<double>(stats.queued)},
                              {{{"state", "in_flight"}}, static_cast<double>(stats.in_flight)}}));
      families.push_back(kaito::HistogramFamily(
          "kaito_provisioner_arm_request_duration_seconds",
          "One ARM HTTP request, sent to answered (each retry its own).", stats.request_seconds));
      families.push_back(kaito::HistogramFamily(
          "kaito_provisioner_arm_retry_wait_seconds",
          "Waits before ARM retries (Retry-After when ARM asks, else backoff).",
          stats.retry_wait_seconds));
      families.push_back(kaito::CounterFamily("kaito_provisioner_arm_retry_after_honoured_total",
                                              "Retries that waited as ARM's Retry-After asked.",
                                              static_cast<double>(stats.retry_after_honoured)));
      families.push_back(
          kaito::CounterFamily("kaito_provisioner_arm_reauthentications_total",
                               "ARM 401s answered with a new token and one more try.",
                               static_cast<double>(stats.reauthentications)));
    }
    if (credential_ != nullptr) {
      families.push_back(kaito::CounterFamily("kaito_provisioner_token_requests_total",
                                              "Token requests to AAD or IMDS (refreshes).",
                                              static_cast<double>(credential_->requests())));
      families.push_back(kaito::CounterFamily(
          "kaito_provisioner_token_failures_total",
          "Token requests that brought no token (refused, or the endpoint failed).",
          static_cast<double>(credential_->failures())));
    }
    return families;
  }

 private:
  std::function<std::map<std::string, int>()> phases_;
  std::shared_ptr<kaito::provisioner::azure::ArmClient> arm_;
  std::shared_ptr<kaito::provisioner::azure::AzureCredential> credential_;
};

int Fail(const std::string& message) {
  std::fprintf(stderr, "kaito-provisioner: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  kaito::DisableMutexDeadlockDetection();
  std::string provider_name = "simulated";
  std::string listen = "127.0.0.1:50052", metrics_listen = "127.0.0.1:8081", port_file;
  std::string log_level = "info", log_format = "text", catalog_dir, cloud = "azure";
  // Azure (accepted, so that deployments can be written now; the provider is not built).
  std::string subscription_id, resource_group, cluster_name, location, api_version, imds_endpoint,
      arm_endpoint = "https://management.azure.com";
  // The simulated cloud and its agents.
  std::string create_delay = "2s", delete_delay = "1s";
  std::vector<std::string> fault_flags;
  kaito::agent::SimulatedRuntimeOptions runtime;
  std::string pull_delay = absl::FormatDuration(runtime.pull_delay),
              start_delay = absl::FormatDuration(runtime.start_delay),
              ready_delay = absl::FormatDuration(runtime.ready_delay),
              job_duration = absl::FormatDuration(runtime.job_duration);

  CLI::App app{"kaito-provisioner: GPU node lifecycle for Kaito (ProvisionerService)"};
  app.set_version_flag("--version", kaito::Version());
  app.add_option("--provider", provider_name, "Cloud provider: simulated | azure")
      ->capture_default_str()
      ->check(CLI::IsMember({"simulated", "azure"}));
  app.add_option("--listen", listen, "gRPC listen address HOST:PORT (port 0 = any)")
      ->capture_default_str();
  app.add_option("--port-file", port_file, "Write the chosen gRPC port to this file");
  app.add_option("--metrics-listen", metrics_listen,
                 "HTTP address for /metrics, /healthz, /readyz (empty = off)")
      ->capture_default_str();
  kaito::TlsServerFiles tls;
  app.add_option("--tls-cert-file", tls.cert_file,
                 "PEM certificate served on the gRPC and HTTP ports (reloaded when it changes)");
  app.add_option("--tls-key-file", tls.key_file, "PEM private key of --tls-cert-file");
  app.add_option("--client-ca-file", tls.client_ca_file,
                 "Require client certificates signed by this CA (kaito-server's)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  app.add_option("--catalog-dir", catalog_dir,
                 "Directory with models.yaml and skus.yaml (default: the built-in catalog)");
  app.add_option("--cloud", cloud, "SKU table of the simulated cloud: azure | aws | arc")
      ->capture_default_str()
      ->check(CLI::IsMember({"azure", "aws", "arc"}));

  const std::string azure = "Azure provider";
  app.add_option("--subscription-id", subscription_id, "Azure subscription id")->group(azure);
  app.add_option("--resource-group", resource_group, "Resource group of the AKS cluster")
      ->group(azure);
  app.add_option("--cluster-name", cluster_name, "AKS cluster name")->group(azure);
  app.add_option("--location", location, "Azure region, e.g. eastus")->group(azure);
  app.add_option("--arm-endpoint", arm_endpoint, "Azure Resource Manager endpoint URL")
      ->capture_default_str()
      ->group(azure);
  app.add_option("--api-version", api_version, "AKS agent-pool API version")->group(azure);
  app.add_option("--imds-endpoint", imds_endpoint,
                 "Instance metadata endpoint URL (managed identity)")
      ->group(azure);
  std::string poll_interval = "15s", create_timeout = "30m", retry_delay = "2s";
  double requests_per_second = 20;
  int burst = 100, max_concurrency = 64, max_retries = 10;
  std::string arm_ca_file;
  bool quota_check = true;
  app.add_option("--azure-quota-check", quota_check,
                 "Read the subscription's vCPU quota (compute usages, needs --location) and "
                 "refuse a create that exceeds it before any PUT")
      ->capture_default_str()
      ->group(azure);
  app.add_option("--azure-poll-interval", poll_interval,
                 "Between polls of an ARM operation when ARM sends no Retry-After")
      ->capture_default_str()
      ->group(azure);
  app.add_option("--azure-create-timeout", create_timeout,
                 "A node claim not running after this fails (CreateTimeout) and its pool is "
                 "deleted")
      ->capture_default_str()
      ->group(azure);
  app.add_option("--azure-requests-per-second", requests_per_second,
                 "Client-side rate limit of ARM requests (token bucket)")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 10000.0))
      ->group(azure);
  app.add_option("--azure-burst", burst, "Burst of the ARM rate limit")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000))
      ->group(azure);
  app.add_option("--azure-max-concurrency", max_concurrency, "ARM requests in flight at most")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000))
      ->group(azure);
  app.add_option("--azure-max-retries", max_retries,
                 "Retries of an ARM request on 408, 429, 5xx and connection faults")
      ->capture_default_str()
      ->check(CLI::Range(0, 100))
      ->group(azure);
  app.add_option("--azure-retry-delay", retry_delay,
                 "Base of the exponential backoff between retries without Retry-After")
      ->capture_default_str()
      ->group(azure);
  app.add_option("--azure-ca-file", arm_ca_file,
                 "PEM CAs trusted for the ARM, AAD and IMDS endpoints (default: the system's)")
      ->group(azure);

  const std::string simulated = "Simulated provider";
  app.add_option("--simulated-create-delay", create_delay,
                 "From CreateNode to Running (or Failed), e.g. 2s, 500ms")
      ->capture_default_str()
      ->group(simulated);
  app.add_option("--simulated-delete-delay", delete_delay, "From DeleteNode to gone")
      ->capture_default_str()
      ->group(simulated);
  app.add_option("--simulated-fault", fault_flags,
                 "Fail creates of TYPE with cloud error CODE: TYPE=CODE[:retryable] (TYPE "
                 "empty or * = every type), e.g. Standard_NC24ads_A100_v4=QuotaExceeded; "
                 "repeatable")
      ->group(simulated);
  app.add_option("--simulated-pull-delay", pull_delay, "Simulated agents: image pull time")
      ->capture_default_str()
      ->group(simulated);
  app.add_option("--simulated-start-delay", start_delay, "Simulated agents: container start time")
      ->capture_default_str()
      ->group(simulated);
  app.add_option("--simulated-ready-delay", ready_delay,
                 "Simulated agents: from start to ready (readiness probe passes)")
      ->capture_default_str()
      ->group(simulated);
  app.add_option("--simulated-job-duration", job_duration,
                 "Simulated agents: how long a tuning job runs before it exits 0")
      ->capture_default_str()
      ->group(simulated);
  CLI11_PARSE(app, argc, argv);

  if (absl::Status s = kaito::SetupLogging(log_level, log_format, "kaito-provisioner"); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  kaito::provisioner::SimulatedProviderOptions options;
  struct DurationFlag {
    const char* name;
    const std::string& text;
    absl::Duration* out;
  };
  for (const DurationFlag& flag :
       {DurationFlag{"--simulated-create-delay", create_delay, &options.create_delay},
        DurationFlag{"--simulated-delete-delay", delete_delay, &options.delete_delay},
        DurationFlag{"--simulated-pull-delay", pull_delay, &runtime.pull_delay},
        DurationFlag{"--simulated-start-delay", start_delay, &runtime.start_delay},
        DurationFlag{"--simulated-ready-delay", ready_delay, &runtime.ready_delay},
        DurationFlag{"--simulated-job-duration", job_duration, &runtime.job_duration}}) {
    if (!absl::ParseDuration(flag.text, flag.out) || *flag.out < absl::ZeroDuration() ||
        *flag.out == absl::InfiniteDuration()) {
      return Fail(std::string(flag.name) + " \"" + flag.text +
                  "\": expected a duration such as 2s, 500ms or 1m30s");
    }
  }
  std::vector<kaito::v1::SimulatedFault> faults;
  for (const std::string& text : fault_flags) {
    auto fault = kaito::provisioner::ParseSimulatedFault(text);
    if (!fault.ok()) return Fail(std::string(fault.status().message()));
    faults.push_back(std::move(*fault));
  }

  tls.require_client_certificate = !tls.client_ca_file.empty();
  if (absl::Status s = kaito::CheckTlsServerFiles(tls); !s.ok()) {
    return Fail(std::string(s.message()));
  }
  if (!tls.enabled()) {
    spdlog::warn(
        "access control is off: any client that reaches --listen may create and "
        "delete nodes (give --tls-cert-file, --tls-key-file and --client-ca-file)");
  }
  kaito::RouteProtobufLogs();
  // SIGINT and SIGTERM are taken on one thread (blocked before any thread starts).
  kaito::TerminationSignals signals;

  auto catalog = catalog_dir.empty() ? kaito::presets::Catalog::Embedded()
                                     : kaito::presets::Catalog::FromDirectory(catalog_dir);
  if (!catalog.ok()) {
    spdlog::critical("cannot load the catalog: {}", catalog.status().ToString());
    return 1;
  }

  // Composition. Teardown (at the end) runs in the reverse order: the provider and its
  // timers before the agents it starts or the ARM client it calls, the clock before the
  // HTTP client whose callbacks it no longer serves.
  auto clock = std::make_unique<kaito::RealClock>();
  std::unique_ptr<kaito::agent::SimulatedFleet> fleet;
  std::unique_ptr<kaito::provisioner::FleetBootstrapper> bootstrapper;
  std::unique_ptr<kaito::provisioner::SimulatedProvider> simulated_provider;
  std::unique_ptr<kaito::http::CurlHttpClient> http;
  std::shared_ptr<kaito::provisioner::azure::ArmClient> arm;
  std::shared_ptr<kaito::provisioner::azure::AzureCredential> credential;
  std::shared_ptr<kaito::provisioner::azure::AzureProvider> azure_provider;
  kaito::provisioner::NodeProvider* provider = nullptr;
  std::function<std::map<std::string, int>()> phases;
  if (provider_name == "azure") {
    kaito::provisioner::azure::AzureProviderOptions azure_options;
    for (const auto& [flag, value] :
         {std::pair<const char*, const std::string*>{"--subscription-id", &subscription_id},
          {"--resource-group", &resource_group},
          {"--cluster-name", &cluster_name}}) {
      if (value->empty()) return Fail(std::string(flag) + " is required with --provider azure");
    }
    azure_options.arm_endpoint = arm_endpoint;
    azure_options.subscription_id = subscription_id;
    azure_options.resource_group = resource_group;
    azure_options.cluster_name = cluster_name;
    azure_options.location = location;
    azure_options.quota_check = quota_check;
    if (location.empty()) {
      spdlog::warn("azure: no --location: creates proceed without a vCPU quota check");
    }
    if (!api_version.empty()) azure_options.api_version = api_version;
    kaito::provisioner::azure::ArmClientOptions arm_options;
    arm_options.requests_per_second = requests_per_second;
    arm_options.burst = burst;
    arm_options.max_concurrency = max_concurrency;
    arm_options.max_retries = max_retries;
    arm_options.ca_file = arm_ca_file;
    arm_options.user_agent = std::string("kaito-provisioner/") + kaito::Version();
    for (const DurationFlag& flag :
         {DurationFlag{"--azure-poll-interval", poll_interval, &azure_options.poll_interval},
          DurationFlag{"--azure-create-timeout", create_timeout, &azure_options.create_timeout},
          DurationFlag{"--azure-retry-delay", retry_delay, &arm_options.retry_delay}}) {
      if (!absl::ParseDuration(flag.text, flag.out) || *flag.out <= absl::ZeroDuration() ||
          *flag.out == absl::InfiniteDuration()) {
        return Fail(std::string(flag.name) + " \"" + flag.text +
                    "\": expected a positive duration such as 15s or 30m");
      }
    }
    azure_options.min_poll_interval =
        std::min(azure_options.min_poll_interval, azure_options.poll_interval);
    auto credential_config = kaito::provisioner::azure::CredentialConfigFromEnvironment(
        [](const char* name) { return std::getenv(name); }, imds_endpoint,
        // The ARM audience: the public cloud's unless --arm-endpoint names another.
        arm_endpoint == "https://management.azure.com" ? "https://management.azure.com/"
                                                       : arm_endpoint + "/");
    if (!credential_config.ok()) return Fail(std::string(credential_config.status().message()));
    credential_config->ca_file = arm_ca_file;
    http = std::make_unique<kaito::http::CurlHttpClient>();
    credential = kaito::provisioner::azure::AzureCredential::Create(*credential_config, http.get(),
                                                                    clock.get());
    spdlog::info("azure: credential {}; ARM {}; cluster {}/{}/{}", credential->Describe(),
                 arm_endpoint, subscription_id, resource_group, cluster_name);
    arm = kaito::provisioner::azure::ArmClient::Create(arm_options, http.get(), clock.get(),
                                                       credential);
    azure_provider =
        kaito::provisioner::azure::AzureProvider::Create(azure_options, arm, clock.get());
    azure_provider->Start([](absl::Status s) {
      if (!s.ok()) {
        spdlog::error(
            "azure: cannot list the cluster's agent pools: {} (claims are adopted "
            "as the control plane asks for them)",
            s.ToString());
      }
    });
    provider = azure_provider.get();
    phases = [p = azure_provider.get()] { return p->CountByPhase(); };
  } else {
    fleet = std::make_unique<kaito::agent::SimulatedFleet>(clock.get(), runtime);
    bootstrapper = std::make_unique<kaito::provisioner::FleetBootstrapper>(fleet.get());
    simulated_provider = std::make_unique<kaito::provisioner::SimulatedProvider>(
        clock.get(), &*catalog, cloud, options, bootstrapper.get());
    simulated_provider->SetFaults(faults);
    provider = simulated_provider.get();
    phases = [p = simulated_provider.get()] { return p->CountByPhase(); };
  }

  auto registry = std::make_shared<prometheus::Registry>();
  kaito::RpcMetrics metrics(*registry);
  // Every call goes through the timing decorator (operation durations and in-flight counts).
  kaito::provisioner::TimedProvider timed_provider(provider, clock.get(), *registry);
  kaito::provisioner::ProvisionerGrpcService provisioner_service(&timed_provider);
  std::unique_ptr<kaito::provisioner::SimulatedCloudGrpcService> simulated_cloud_service;
  if (simulated_provider) {
    simulated_cloud_service =
        std::make_unique<kaito::provisioner::SimulatedCloudGrpcService>(simulated_provider.get());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  int port = 0;
  grpc::ServerBuilder builder;
  kaito::ApplyServerDefaults(builder, &metrics);
  builder.AddListeningPort(listen, kaito::GrpcServerCredentials(tls), &port);
  builder.RegisterService(&provisioner_service);
  std::vector<std::string> services = {
      kaito::v1::ProvisionerService::service_full_name(), "grpc.health.v1.Health",
      "grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection"};
  if (simulated_cloud_service) {
    builder.RegisterService(simulated_cloud_service.get());
    services.push_back(kaito::v1::SimulatedCloudService::service_full_name());
  }
  kaito::ReflectionV1Service reflection_v1(services);
  builder.RegisterService(&reflection_v1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    spdlog::critical("cannot listen for gRPC on {}", listen);
    return 1;
  }

  // /livez: the clock's timer thread and the ARM client's HTTP loop keep turning.
  kaito::LivenessWatch liveness;
  liveness.WatchClock("the clock's timer thread", clock.get());
  if (http != nullptr) {
    liveness.Watch("the HTTP client's loop", [client = http.get()] { return client->stalled_for(); });
  }
  std::unique_ptr<kaito::MetricsServer> metrics_server;
  // From the signal on, /readyz says 503 and gRPC health NOT_SERVING while calls drain.
  std::atomic<bool> stopping{false};
  if (!metrics_listen.empty()) {
    auto started = kaito::MetricsServer::Start(
        metrics_listen, {registry, std::make_shared<ProviderCollector>(phases, arm, credential)},
        [&stopping]() -> std::string { return stopping.load() ? "shutting down" : ""; }, tls,
        [&liveness] { return liveness.Check(); });
    if (!started.ok()) {
      spdlog::critical("cannot serve metrics: {}", started.status().ToString());
      return 1;
    }
    metrics_server = std::move(*started);
  }

  spdlog::info("kaito-provisioner {} serving gRPC on port {} (listen {}), metrics on port {}",
               kaito::Version(), port, listen, metrics_server ? metrics_server->port() : 0);
  if (simulated_provider) {
    spdlog::warn(
        "SIMULATION: provider \"simulated\" (cloud {}): no cloud resources are created; each "
        "node is a simulated agent in this process",
        cloud);
  }
  if (!port_file.empty() && !kaito::WritePortFile(port_file, port)) {
    spdlog::critical("cannot write --port-file {}", port_file);
    return 1;
  }

  std::thread waiter([&] {
    const int sig = signals.Wait();
    spdlog::info("signal {}: shutting down", sig);
    stopping.store(true);
    server->GetHealthCheckService()->SetServingStatus(false);
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  });
  server->Wait();
  waiter.join();
  metrics_server.reset();
  server.reset();
  if (azure_provider) azure_provider->Stop();
  if (arm) arm->Stop();
  simulated_cloud_service.reset();
  simulated_provider.reset();
  bootstrapper.reset();
  fleet.reset();
  clock.reset();
  http.reset();
  spdlog::info("stopped");
  return 0;
}
