// kaito-agent: the node agent. Dials kaito-server (NodeService.Connect), reports the node's
// GPUs and runs the workloads the server places on it. See agent/README.md.
#include <fcntl.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/agent.h"
#include "agent/agent_config.h"
#include "agent/agent_metrics.h"
#include "agent/data/workload_data.h"
#include "agent/gpu/fake_gpu_probe.h"
#include "agent/gpu/nvml_gpu_probe.h"
#include "agent/node_collector.h"
#include "agent/runtime/docker_runtime.h"
#include "agent/runtime/simulated_runtime.h"
#include "common/clock.h"
#include "common/http/http_client.h"
#include "common/daemon.h"
#include "common/k8s_names.h"
#include "common/liveness.h"
#include "common/logging.h"
#include "common/metrics_server.h"
#include "common/tls.h"
#include "common/version.h"

namespace {

constexpr char kName[] = "kaito-agent";

int Fail(const std::string& message, int code = 2) {
  std::fprintf(stderr, "%s: %s\n", kName, message.c_str());
  return code;
}

std::string Hostname() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "";
  std::string host(name);
  host = host.substr(0, host.find('.'));
  std::transform(host.begin(), host.end(), host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return host;
}

// Why `kind` is not a CDI kind ("vendor/class", e.g. nvidia.com/gpu), or "".
std::string CheckCdiKind(const std::string& kind) {
  const size_t slash = kind.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == kind.size() ||
      kind.find('/', slash + 1) != std::string::npos) {
    return "want VENDOR/CLASS, e.g. nvidia.com/gpu";
  }
  for (char c : kind) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_' &&
        c != '/') {
      return "only letters, digits, '.', '-', '_' and one '/'";
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  kaito::DisableMutexDeadlockDetection();
  std::string server, node_name, labels_text, taints_text, instance_type, provider_id;
  std::string address = "127.0.0.1";
  std::string runtime_kind = "docker", docker_host = "unix:///var/run/docker.sock";
  std::string publish_address, docker_gpus = "auto", cdi_gpu_kind = "nvidia.com/gpu";
  std::vector<std::string> insecure_registries;
  bool allow_private_downloads = false;
  std::string gpu_probe_kind, fake_gpus, fake_gpus_file, state_dir;
  std::string nvml_library = kaito::agent::kNvmlLibrary;
  std::string crash_backoff = "10s";
  std::string pull_delay = "500ms", start_delay = "500ms", ready_delay = "1s", job_duration = "3s",
              probe_interval = "30s";
  std::vector<std::string> fault_specs;
  int max_restarts = 5;
  std::string listen, port_file, metrics_listen = "127.0.0.1:8082";
  std::string log_level = "info", log_format = "text";

  CLI::App app{
      "kaito-agent: the Kaito node agent. Dials kaito-server (--server), reports this node and "
      "its GPUs, and runs the workloads placed on it in a container runtime. It serves no "
      "gRPC of its own: only /metrics, /healthz and /readyz on --metrics-listen."};
  app.set_version_flag("--version", kaito::Version());
  app.add_option("--server", server, "kaito-server address HOST:PORT")->required();
  app.add_option("--node-name", node_name, "Node name (default: the host name, lower case)");
  app.add_option("--labels", labels_text, "Node labels k=v,k2=v2");
  app.add_option("--taints", taints_text, "Node taints key[=value]:Effect,...");
  app.add_option("--instance-type", instance_type, "Instance type, e.g. Standard_NC24ads_A100_v4");
  app.add_option("--provider-id", provider_id, "The cloud's id of this machine");
  app.add_option("--address", address, "Host or IP where this node's workloads answer")
      ->capture_default_str();
  app.add_option("--runtime", runtime_kind,
                 "Container runtime: docker (the Docker Engine API: Docker, or Podman's "
                 "service) | simulated (nothing runs)")
      ->capture_default_str();
  app.add_option("--docker-host", docker_host,
                 "Docker Engine API socket (Podman: unix:///run/podman/podman.sock)")
      ->capture_default_str();
  app.add_option("--publish-address", publish_address,
                 "--runtime docker: the host address workload ports are published on (default: "
                 "every interface); each gets a port the kernel picks, reported in the endpoint");
  app.add_option("--docker-gpus", docker_gpus,
                 "--runtime docker: how GPUs are given to containers: auto (CDI names for "
                 "Podman, device requests for Docker) | cdi | device-requests | none (not "
                 "attached: for nodes whose GPUs are fake)")
      ->capture_default_str();
  app.add_option("--insecure-registry", insecure_registries,
                 "A registry (host[:port]) the agent pushes tuning output to over plain HTTP; "
                 "repeatable (a local or test registry)");
  app.add_flag("--allow-private-downloads", allow_private_downloads,
               "Let tuning input downloads reach loopback and private addresses (tests and dev "
               "only: it turns off the SSRF guard at download time)");
  app.add_option("--cdi-gpu-kind", cdi_gpu_kind,
                 "--runtime docker with CDI: the CDI kind of the node's GPUs (device N is "
                 "KIND=N)")
      ->capture_default_str();
  app.add_option("--gpu-probe", gpu_probe_kind,
                 "GPU discovery: nvml | fake (default: fake when --fake-gpus or "
                 "--fake-gpus-file is given, else nvml)");
  app.add_option("--nvml-library", nvml_library,
                 "--gpu-probe nvml: the NVML library to load (a name the dynamic linker finds, or "
                 "a path); without it the agent starts, reports no GPUs and tries again")
      ->capture_default_str();
  app.add_option("--fake-gpus", fake_gpus,
                 "Fake GPUs COUNTxMODEL:MEMORY_GIB[:CC],... e.g. 1xA100:80:8.0");
  app.add_option("--fake-gpus-file", fake_gpus_file,
                 "Fake GPUs from a file (YAML or one spec per line), read again at every probe");
  app.add_option("--gpu-probe-interval", probe_interval, "How often GPUs are probed again")
      ->capture_default_str();
  app.add_option("--state-dir", state_dir,
                 "Directory of the agent's node-local state (created 0700; locked, so two "
                 "agents cannot share it)");
  app.add_option("--simulated-pull-delay", pull_delay, "Simulated runtime: first pull of an image")
      ->capture_default_str();
  app.add_option("--simulated-start-delay", start_delay, "Simulated runtime: container start")
      ->capture_default_str();
  app.add_option("--simulated-ready-delay", ready_delay,
                 "Simulated runtime: start to healthy for long-running containers")
      ->capture_default_str();
  app.add_option("--simulated-job-duration", job_duration,
                 "Simulated runtime: how long run-to-completion containers run")
      ->capture_default_str();
  app.add_option("--simulate-fault", fault_specs,
                 "Simulated runtime fault, repeatable: "
                 "SUBSTRING=pull|start|crash[:AFTER[:CODE]]|oom[:AFTER]|never-ready (matches "
                 "the image or the workload name)");
  app.add_option("--crash-backoff", crash_backoff,
                 "Wait before the first restart of a crashed inference container; it doubles "
                 "per crash up to 5m, as kubelet's")
      ->capture_default_str();
  app.add_option("--max-restarts", max_restarts,
                 "Restarts of a crashing inference workload before it is Failed")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000000));
  app.add_option("--listen", listen,
                 "Accepted for symmetry with the other daemons; the agent serves no gRPC (it "
                 "dials the server), so this is ignored");
  app.add_option("--port-file", port_file, "Write the chosen metrics port to this file");
  app.add_option("--metrics-listen", metrics_listen,
                 "HTTP address for /metrics, /healthz, /readyz (empty = off; port 0 = any)")
      ->capture_default_str();
  kaito::TlsClientFiles client_tls;
  app.add_option("--certificate-authority", client_tls.ca_file,
                 "Dial --server over TLS, verifying it against this CA");
  app.add_option("--client-certificate", client_tls.cert_file,
                 "This node's certificate (CN system:node:<node-name>), presented to the server");
  app.add_option("--client-key", client_tls.key_file, "The key of --client-certificate");
  kaito::TlsServerFiles serving_tls;
  app.add_option("--tls-cert-file", serving_tls.cert_file,
                 "PEM certificate of the HTTP port (/metrics, /healthz, /readyz)");
  app.add_option("--tls-key-file", serving_tls.key_file, "PEM private key of --tls-cert-file");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text|json")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // Everything is checked before anything starts.
  if (node_name.empty()) node_name = Hostname();
  for (const absl::Status& s :
       {kaito::CheckTlsClientFiles(client_tls), kaito::CheckTlsServerFiles(serving_tls)}) {
    if (!s.ok()) {
      std::fprintf(stderr, "kaito-agent: %s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  if (std::string why = kaito::CheckDnsSubdomain(node_name); !why.empty()) {
    return Fail("--node-name \"" + node_name + "\": " + why);
  }
  auto labels = kaito::agent::ParseLabels(labels_text);
  if (!labels.ok()) return Fail(std::string(labels.status().message()));
  auto taints = kaito::agent::ParseTaints(taints_text);
  if (!taints.ok()) return Fail(std::string(taints.status().message()));
  if (runtime_kind != "simulated" && runtime_kind != "docker") {
    return Fail("--runtime \"" + runtime_kind + "\": want simulated or docker");
  }
  const bool fake_given = !fake_gpus.empty() || !fake_gpus_file.empty();
  if (gpu_probe_kind.empty()) gpu_probe_kind = fake_given ? "fake" : "nvml";
  if (gpu_probe_kind == "nvml" && fake_given) {
    return Fail("--fake-gpus and --fake-gpus-file need --gpu-probe fake");
  }
  if (gpu_probe_kind != "fake" && gpu_probe_kind != "nvml") {
    return Fail("--gpu-probe \"" + gpu_probe_kind + "\": want nvml or fake");
  }
  if (!fake_gpus.empty() && !fake_gpus_file.empty()) {
    return Fail("give --fake-gpus or --fake-gpus-file, not both");
  }
  kaito::agent::SimulatedRuntime::Options runtime_options;
  struct DurationFlag {
    const char* flag;
    const std::string* text;
    absl::Duration* out;
  };
  absl::Duration probe_every, crash_backoff_initial;
  for (const DurationFlag& d : {
           DurationFlag{"--simulated-pull-delay", &pull_delay, &runtime_options.pull_delay},
           DurationFlag{"--simulated-start-delay", &start_delay, &runtime_options.start_delay},
           DurationFlag{"--simulated-ready-delay", &ready_delay, &runtime_options.ready_delay},
           DurationFlag{"--simulated-job-duration", &job_duration, &runtime_options.job_duration},
           DurationFlag{"--gpu-probe-interval", &probe_interval, &probe_every},
           DurationFlag{"--crash-backoff", &crash_backoff, &crash_backoff_initial},
       }) {
    auto parsed = kaito::agent::ParseFlagDuration(d.flag, *d.text);
    if (!parsed.ok()) return Fail(std::string(parsed.status().message()));
    *d.out = *parsed;
  }
  for (const std::string& spec : fault_specs) {
    auto fault = kaito::agent::ParseSimulatedFault(spec);
    if (!fault.ok()) return Fail("--simulate-fault: " + std::string(fault.status().message()));
    runtime_options.faults.push_back(std::move(*fault));
  }
  kaito::agent::DockerRuntimeOptions docker_options;
  docker_options.docker_host = docker_host;
  docker_options.publish_address = publish_address;
  docker_options.cdi_gpu_kind = cdi_gpu_kind;
  if (docker_gpus == "cdi") {
    docker_options.gpu_mode = kaito::agent::DockerRuntimeOptions::GpuMode::kCdi;
  } else if (docker_gpus == "device-requests") {
    docker_options.gpu_mode = kaito::agent::DockerRuntimeOptions::GpuMode::kDeviceRequests;
  } else if (docker_gpus == "none") {
    docker_options.gpu_mode = kaito::agent::DockerRuntimeOptions::GpuMode::kNone;
  } else if (docker_gpus != "auto") {
    return Fail("--docker-gpus \"" + docker_gpus +
                "\": want auto, cdi, device-requests or none");
  }
  if (std::string why = CheckCdiKind(cdi_gpu_kind); !why.empty()) {
    return Fail("--cdi-gpu-kind \"" + cdi_gpu_kind + "\": " + why);
  }
  if (auto socket = kaito::agent::DockerSocketPath(docker_host); !socket.ok()) {
    if (runtime_kind == "docker") return Fail(std::string(socket.status().message()));
  }
  if (!port_file.empty() && metrics_listen.empty()) {
    return Fail("--port-file writes the metrics port; it needs --metrics-listen");
  }
  std::unique_ptr<kaito::agent::GpuProbe> probe;
  kaito::agent::LazyNvmlProbe* nvml = nullptr;
  if (gpu_probe_kind == "nvml") {
    auto lazy = std::make_unique<kaito::agent::LazyNvmlProbe>(nvml_library);
    nvml = lazy.get();
    probe = std::move(lazy);
  } else if (!fake_gpus_file.empty()) {
    probe = kaito::agent::FakeGpuProbe::FromFile(fake_gpus_file, node_name);
    if (auto first = probe->Probe(); !first.ok()) {
      return Fail("--fake-gpus-file: " + std::string(first.status().message()));
    }
  } else {
    auto parsed = kaito::agent::FakeGpuProbe::FromSpec(fake_gpus, node_name);
    if (!parsed.ok()) return Fail("--fake-gpus: " + std::string(parsed.status().message()));
    probe = std::move(*parsed);
  }

  if (absl::Status s = kaito::SetupLogging(log_level, log_format, kName); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  // SIGINT and SIGTERM are taken on one thread (blocked before any thread starts).
  kaito::TerminationSignals signals;

  int state_lock = -1;
  if (!state_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(state_dir, ec);
    if (ec || chmod(state_dir.c_str(), 0700) != 0) {
      spdlog::critical("cannot create --state-dir {}: {}", state_dir,
                       ec ? ec.message() : std::strerror(errno));
      return 1;
    }
    const std::string lock_path = state_dir + "/agent.lock";
    state_lock = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (state_lock < 0 || flock(state_lock, LOCK_EX | LOCK_NB) != 0) {
      spdlog::critical("--state-dir {} is in use by another kaito-agent (cannot lock {})",
                       state_dir, lock_path);
      return 1;
    }
  }
  if (nvml != nullptr) {
    // After the signals are blocked: NVML may start threads. Without a driver the agent
    // still starts; it reports no GPUs and tries NVML again at every probe.
    if (auto gpus = nvml->Probe(); gpus.ok()) {
      const std::string& driver = nvml->opened()->driver_version();
      spdlog::info("NVML: NVIDIA driver {}, {} GPU(s)",
                   driver.empty() ? "(version unknown)" : driver, gpus->size());
    } else {
      spdlog::warn(
          "--gpu-probe nvml: no NVIDIA driver usable on this node ({}); reporting no GPUs and "
          "trying again at every probe",
          std::string(gpus.status().message()));
    }
  }
  if (!listen.empty()) {
    spdlog::info(
        "--listen {} ignored: kaito-agent serves no gRPC (it dials --server); "
        "metrics are on --metrics-listen",
        listen);
  }

  kaito::RealClock clock;
  auto registry = std::make_shared<prometheus::Registry>();
  kaito::agent::AgentMetrics metrics(*registry);
  std::unique_ptr<kaito::agent::ContainerRuntime> runtime;
  if (runtime_kind == "docker") {
    docker_options.on_probe = [&metrics](absl::Duration took, bool passed) {
      metrics.readiness_probe(passed).Observe(absl::ToDoubleSeconds(took));
    };
    auto docker = kaito::agent::DockerRuntime::Connect(&clock, docker_options);
    if (!docker.ok()) {
      spdlog::critical("--runtime docker: {}", std::string(docker.status().message()));
      return 1;
    }
    const char* gpus = "not attached (--docker-gpus none)";
    if ((*docker)->gpu_attach() == kaito::agent::GpuAttach::kCdi) gpus = "CDI devices";
    if ((*docker)->gpu_attach() == kaito::agent::GpuAttach::kDeviceRequests) {
      gpus = "device requests (NVIDIA container toolkit)";
    }
    spdlog::info("--runtime docker: {} at {}; GPUs: {}{}", (*docker)->engine(), docker_host, gpus,
                 (*docker)->gpu_attach() == kaito::agent::GpuAttach::kCdi
                     ? " " + cdi_gpu_kind + "=N"
                     : std::string());
    runtime = *std::move(docker);
  } else {
    spdlog::warn(
        "--runtime simulated: NOTHING REALLY RUNS on this node; containers are simulated "
        "(pull {}, start {}, ready {}, job {}){}",
        absl::FormatDuration(runtime_options.pull_delay),
        absl::FormatDuration(runtime_options.start_delay),
        absl::FormatDuration(runtime_options.ready_delay),
        absl::FormatDuration(runtime_options.job_duration),
        runtime_options.faults.empty() ? "" : ", with injected faults");
    runtime = std::make_unique<kaito::agent::SimulatedRuntime>(&clock, std::move(runtime_options));
  }

  kaito::agent::AgentOptions options;
  options.node_name = node_name;
  options.labels = std::move(*labels);
  options.taints = std::move(*taints);
  options.instance_type = instance_type;
  options.provider_id = provider_id;
  options.address = address;
  options.server_address = server;
  options.channel =
      kaito::agent::CreateAgentChannel(server, kaito::GrpcChannelCredentials(client_tls));
  options.gpu_probe_interval = probe_every;
  options.supervisor.max_restarts = max_restarts;
  options.supervisor.crash_backoff_initial = crash_backoff_initial;
  // The agent's own transfers (tuning input downloads, output pushes), with a real runtime:
  // their directories are under --state-dir.
  std::unique_ptr<kaito::http::CurlHttpClient> data_http;
  std::unique_ptr<kaito::agent::AgentWorkloadData> workload_data;
  if (runtime_kind == "docker") {
    kaito::agent::AgentWorkloadDataOptions data_options;
    if (!state_dir.empty()) data_options.root = state_dir + "/data";
    data_options.download.allow_private_addresses = allow_private_downloads;
    data_options.insecure_registries.insert(insecure_registries.begin(),
                                            insecure_registries.end());
    data_options.on_bytes = [&metrics](const char* direction, int64_t bytes) {
      metrics.data_bytes(std::string_view(direction) == "pushed")
          .Increment(static_cast<double>(bytes));
    };
    if (allow_private_downloads) {
      spdlog::warn("--allow-private-downloads: input downloads may reach loopback and private "
                   "addresses (the SSRF guard is off)");
    }
    data_http = std::make_unique<kaito::http::CurlHttpClient>();
    workload_data = std::make_unique<kaito::agent::AgentWorkloadData>(&clock, data_http.get(),
                                                                      std::move(data_options));
    options.supervisor.data = workload_data.get();
  }
  options.metrics = &metrics;
  auto agent =
      std::make_unique<kaito::agent::Agent>(std::move(options), &clock, probe.get(), runtime.get());

  // /livez: the clock's timer thread (heartbeats, probes, back-offs) keeps turning.
  kaito::LivenessWatch liveness;
  liveness.WatchClock("the clock's timer thread", &clock);
  std::unique_ptr<kaito::MetricsServer> metrics_server;
  if (!metrics_listen.empty()) {
    auto started = kaito::MetricsServer::Start(
        metrics_listen, {registry, std::make_shared<kaito::agent::NodeCollector>(agent.get())},
        [agent = agent.get()]() -> std::string {
          return agent->state().welcomed ? "" : "not connected to kaito-server";
        },
        serving_tls, [&liveness] { return liveness.Check(); });
    if (!started.ok()) {
      spdlog::critical("cannot start: {}", started.status().ToString());
      return 1;
    }
    metrics_server = std::move(*started);
    if (!port_file.empty() && !kaito::WritePortFile(port_file, metrics_server->port())) {
      spdlog::critical("cannot write --port-file {}", port_file);
      return 1;
    }
  }
  spdlog::info("kaito-agent {} for node {}: server {}, runtime {}, metrics on {}", kaito::Version(),
               node_name, server, runtime->name(),
               metrics_server ? std::to_string(metrics_server->port()) : "off");
  agent->Start();

  const int sig = signals.Wait();
  spdlog::info("signal {}: shutting down (containers keep running)", sig);
  agent->Stop();
  metrics_server.reset();  // Its /readyz reads the agent.
  agent.reset();
  if (state_lock >= 0) close(state_lock);
  spdlog::info("stopped");
  return 0;
}
