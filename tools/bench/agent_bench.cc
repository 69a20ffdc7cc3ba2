#include "tools/bench/agent_bench.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/runtime/docker_runtime.h"
#include "agent/supervisor/workload_supervisor.h"
#include "agent/work_serializer.h"
#include "common/clock.h"
#include "tools/bench/child_process.h"

namespace kaito::bench {
namespace {

// Waits for one callback's value.
template <typename T>
class Reply {
 public:
  absl::AnyInvocable<void(T)> Callback() {
    return [this](T value) {
      absl::MutexLock lock(&mu_);
      value_.emplace(std::move(value));
    };
  }
  T Wait() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::optional<T>* v) { return v->has_value(); }, &value_));
    return std::move(*value_);
  }

 private:
  absl::Mutex mu_;
  std::optional<T> value_;
};

v1::Workload BenchWorkload(const std::string& image, int i) {
  v1::Workload w;
  w.mutable_metadata()->set_namespace_("bench");
  w.mutable_metadata()->set_name(absl::StrCat("start-", i));
  w.mutable_metadata()->set_uid(
      absl::StrCat("bench-uid-", i, "-", absl::ToUnixMicros(absl::Now())));
  w.mutable_metadata()->set_generation(1);
  v1::WorkloadSpec* spec = w.mutable_spec();
  spec->set_name(w.metadata().name());
  spec->set_role("inference");
  spec->set_restart_policy("Always");
  spec->set_termination_grace_period_seconds(1);
  v1::ContainerSpec* c = spec->add_containers();
  c->set_name("main");
  c->set_image(image);
  c->add_command("sleep");
  c->add_command("3600");
  return w;
}

// Pss and the private (unshared) part of a process's memory, in KiB, from smaps_rollup.
std::pair<int64_t, int64_t> PssAndPrivateKib(pid_t pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string line;
  int64_t pss = 0, priv = 0;
  while (std::getline(rollup, line)) {
    std::istringstream in(line);
    std::string key;
    int64_t kib = 0;
    in >> key >> kib;
    if (key == "Pss:") pss = kib;
    if (key == "Private_Clean:" || key == "Private_Dirty:") priv += kib;
  }
  return {pss, priv};
}

// The idle agent, as a process beside a kaito-server process.
nlohmann::json Idle(const AgentBenchOptions& o, const std::string& dir) {
  ChildProcess server;
  const std::string server_port = dir + "/server.port";
  if (absl::Status s = server.Start(
          {SelfDir() + "/kaito-server", "--listen", "127.0.0.1:0", "--metrics-listen", "",
           "--data-dir", dir + "/server", "--port-file", server_port, "--log-level", "warn"},
          server_port, absl::Seconds(30));
      !s.ok()) {
    return {{"error", s.ToString()}};
  }
  ChildProcess agent;
  const std::string agent_port = dir + "/agent.port";
  if (absl::Status s = agent.Start({SelfDir() + "/kaito-agent",
                                    "--server",
                                    absl::StrCat("127.0.0.1:", server.port()),
                                    "--node-name",
                                    "bench-agent",
                                    "--runtime",
                                    "docker",
                                    "--docker-host",
                                    o.docker_host,
                                    "--docker-gpus",
                                    "none",
                                    "--gpu-probe",
                                    "fake",
                                    "--fake-gpus",
                                    "1xA100:80:8.0",
                                    "--metrics-listen",
                                    "127.0.0.1:0",
                                    "--port-file",
                                    agent_port,
                                    "--log-level",
                                    "warn"},
                                   agent_port, absl::Seconds(30));
      !s.ok()) {
    return {{"error", s.ToString()}};
  }
  absl::SleepFor(o.warmup);
  const ProcSample before = SampleProcess(agent.pid());
  const absl::Time from = absl::Now();
  absl::SleepFor(o.idle);
  const ProcSample after = SampleProcess(agent.pid());
  const double seconds = absl::ToDoubleSeconds(absl::Now() - from);
  const double cpu_percent = 100.0 * (after.cpu_seconds - before.cpu_seconds) / seconds;
  const auto [pss_kib, private_kib] = PssAndPrivateKib(agent.pid());
  return {{"rss_mib", static_cast<double>(after.rss_bytes) / (1 << 20)},
          // RSS counts every resident page of the shared libraries the agent maps (gRPC,
          // OpenSSL, libcurl's dependencies); PSS divides the shared ones among the processes
          // that map them; private is the agent's alone.
          {"pss_mib", static_cast<double>(pss_kib) / 1024},
          {"private_mib", static_cast<double>(private_kib) / 1024},
          {"cpu_percent_of_a_core", cpu_percent},
          {"window_s", seconds},
          {"target_rss_mib", 20},
          {"target_cpu_percent", 1.0},
          {"met", after.rss_bytes <= (20ll << 20) && cpu_percent <= 1.0}};
}

nlohmann::json Starts(const AgentBenchOptions& o) {
  RealClock clock;
  agent::DockerRuntimeOptions ro;
  ro.docker_host = o.docker_host;
  ro.gpu_mode = agent::DockerRuntimeOptions::GpuMode::kNone;
  auto runtime = agent::DockerRuntime::Connect(&clock, ro);
  if (!runtime.ok()) return {{"error", runtime.status().ToString()}};
  Reply<absl::Status> pulled;
  (*runtime)->PullImage(o.image, pulled.Callback());
  if (absl::Status s = pulled.Wait(); !s.ok()) return {{"error", s.ToString()}};

  auto strand = std::make_shared<agent::WorkSerializer>();
  absl::Mutex mu;
  std::map<std::string, std::string> phases;
  agent::WorkloadSupervisorOptions so;
  so.node_name = "bench-node";
  agent::WorkloadSupervisor supervisor(so, &clock, runtime->get(), strand,
                                       [&](const v1::WorkloadReport& r) {
                                         absl::MutexLock lock(&mu);
                                         phases[r.name()] = r.status().phase();
                                       });
  std::vector<double> engine_ms, agent_ms, added_ms;
  for (int i = 0; i < o.starts; ++i) {
    // The floor: the engine's create + start of the same container, through the runtime.
    agent::ContainerConfig config;
    config.name = absl::StrCat("kaito-bench-raw-", i, "-", absl::ToUnixMicros(absl::Now()));
    config.image = o.image;
    config.entrypoint = {"sleep", "3600"};
    const absl::Time raw_from = absl::Now();
    Reply<absl::StatusOr<std::string>> created;
    (*runtime)->CreateContainer(config, created.Callback());
    absl::StatusOr<std::string> id = created.Wait();
    if (!id.ok()) return {{"error", id.status().ToString()}};
    Reply<absl::Status> started;
    (*runtime)->StartContainer(*id, started.Callback());
    if (absl::Status s = started.Wait(); !s.ok()) return {{"error", s.ToString()}};
    const double raw = absl::ToDoubleMilliseconds(absl::Now() - raw_from);
    Reply<absl::Status> stopped, removed;
    (*runtime)->StopContainer(*id, absl::ZeroDuration(), stopped.Callback());
    (void)stopped.Wait();
    (*runtime)->RemoveContainer(*id, removed.Callback());
    (void)removed.Wait();

    // The same through the supervisor: desired set to Ready.
    v1::Workload w = BenchWorkload(o.image, i);
    const absl::Time from = absl::Now();
    strand->Run([&] { supervisor.Apply(2 * i + 1, {w}); });
    {
      absl::MutexLock lock(&mu);
      auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu) {
        auto it = phases.find(w.metadata().name());
        return it != phases.end() && (it->second == "Ready" || it->second == "Failed");
      };
      if (!mu.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(60))) {
        return {{"error", "a workload did not become Ready within 60 s"}};
      }
      if (phases[w.metadata().name()] == "Failed") return {{"error", "a workload failed"}};
    }
    const double through_agent = absl::ToDoubleMilliseconds(absl::Now() - from);
    engine_ms.push_back(raw);
    agent_ms.push_back(through_agent);
    added_ms.push_back(through_agent - raw);
    // Removed before the next: an empty desired set, then wait for the container to go.
    strand->Run([&] { supervisor.Apply(2 * i + 2, {}); });
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      Reply<absl::StatusOr<std::vector<agent::ContainerInfo>>> listed;
      (*runtime)->ListContainers({{"kaito.sh/workload-namespace", "bench"}}, listed.Callback());
      auto list = listed.Wait();
      if (list.ok() && list->empty()) break;
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  strand->Close();
  const double p50 = Percentile(added_ms, 0.5), p90 = Percentile(added_ms, 0.9);
  return {{"starts", o.starts},
          {"engine_create_start_ms_p50", Percentile(engine_ms, 0.5)},
          {"through_agent_ms_p50", Percentile(agent_ms, 0.5)},
          {"added_ms_p50", p50},
          {"added_ms_p90", p90},
          {"target_added_ms", 100},
          {"met", p90 <= 100}};
}

}  // namespace

nlohmann::json RunAgentBench(const AgentBenchOptions& o) {
  if (o.docker_host.empty() || o.image.empty()) {
    return {{"error", "give --docker-host and --image"}};
  }
  const std::string dir = BenchDir(o.data_dir);
  nlohmann::json out = {{"bench", "agent"}, {"docker_host", o.docker_host}, {"image", o.image}};
  out["idle"] = Idle(o, dir);
  out["start"] = Starts(o);
  for (const char* part : {"idle", "start"}) {
    if (out[part].contains("error")) out["error"] = out[part]["error"];
  }
  return out;
}

}  // namespace kaito::bench
