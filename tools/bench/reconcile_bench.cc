#include "tools/bench/reconcile_bench.h"

#include <grpcpp/grpcpp.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "agent/simulated_fleet.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "server/server_app.h"
#include "tools/bench/child_process.h"

extern char** environ;

namespace kaito::bench {
namespace {


nlohmann::json Distribution(const std::vector<double>& ms) {
  return {{"count", ms.size()},
          {"p50_ms", Percentile(ms, 0.50)},
          {"p99_ms", Percentile(ms, 0.99)},
          {"max_ms", ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end())}};
}

v1::GpuInfo A100() {
  v1::GpuInfo g;
  g.set_model("A100");
  g.set_memory_bytes(int64_t{80} << 30);
  g.set_compute_capability("8.0");
  g.set_healthy(true);
  return g;
}

agent::SimulatedNodeSpec NodeSpec(const std::string& name, const std::string& slot,
                                  const std::string& server) {
  agent::SimulatedNodeSpec spec;
  spec.node_name = name;
  spec.labels = {{"bench-slot", slot}};
  spec.instance_type = "Standard_NC24ads_A100_v4";
  spec.gpus = {A100()};
  spec.server_address = server;
  return spec;
}

bool NodeReady(const v1::Node& node) {
  for (const auto& c : node.status().conditions()) {
    if (c.type() == "Ready") return c.status() == "True";
  }
  return false;
}

// Records when objects of one cache satisfy a predicate for the first time.
class FirstTimeSink : public server::CacheSink {
 public:
  explicit FirstTimeSink(std::function<bool(const google::protobuf::Message&)> pred)
      : pred_(std::move(pred)) {}
  void OnEvent(const server::CacheEventPtr& e) override {
    if (e->type == v1::BOOKMARK || e->type == v1::DELETED || !e->object) return;
    if (!pred_(*e->object)) return;
    const std::string name = server::Metadata(*e->object).name();
    absl::MutexLock lock(&mu_);
    times_.try_emplace(name, absl::Now());
  }
  std::optional<absl::Time> Get(const std::string& name) {
    absl::MutexLock lock(&mu_);
    auto it = times_.find(name);
    if (it == times_.end()) return std::nullopt;
    return it->second;
  }
  size_t size() {
    absl::MutexLock lock(&mu_);
    return times_.size();
  }
  bool WaitFor(const std::string& name, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto has = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return times_.contains(name); };
    return mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
  }
  bool WaitForCount(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto has = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return times_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
  }

 private:
  std::function<bool(const google::protobuf::Message&)> pred_;
  absl::Mutex mu_;
  std::map<std::string, absl::Time> times_ ABSL_GUARDED_BY(mu_);
};

// The cumulative bucket counts of one series of a Prometheus histogram (upper bound ->
// count), so that two snapshots give the distribution of what happened between them.
using Buckets = std::vector<std::pair<double, double>>;
Buckets Snapshot(prometheus::Registry& registry, const std::string& family,
                 const std::string& label, const std::string& value) {
  for (const auto& f : registry.Collect()) {
    if (f.name != family) continue;
    for (const auto& m : f.metric) {
      bool match = false;
      for (const auto& l : m.label) match |= l.name == label && l.value == value;
      if (!match) continue;
      Buckets out;
      for (const auto& b : m.histogram.bucket) {
        out.emplace_back(b.upper_bound, static_cast<double>(b.cumulative_count));
      }
      return out;
    }
  }
  return {};
}

Buckets Minus(const Buckets& after, const Buckets& before) {
  Buckets out = after;
  for (size_t i = 0; i < out.size() && i < before.size(); ++i) out[i].second -= before[i].second;
  return out;
}

// The q-quantile, interpolated within its bucket (seconds).
double Quantile(const Buckets& b, double q) {
  if (b.empty() || b.back().second == 0) return 0;
  const double total = b.back().second;
  double prev_bound = 0, prev_count = 0;
  for (const auto& [bound, count] : b) {
    if (count >= q * total) {
      if (std::isinf(bound)) return prev_bound;
      const double in_bucket = count - prev_count;
      return prev_bound + (in_bucket > 0 ? (q * total - prev_count) / in_bucket : 1) *
                              (bound - prev_bound);
    }
    prev_bound = bound;
    prev_count = count;
  }
  return prev_bound;
}

// The share of observations at or under `bound`.
double FractionWithin(const Buckets& b, double bound) {
  if (b.empty() || b.back().second == 0) return 0;
  for (const auto& [upper, count] : b) {
    if (std::abs(upper - bound) < 1e-12) return count / b.back().second;
  }
  return 0;
}

nlohmann::json QueueWait(const Buckets& b) {
  return {{"count", b.empty() ? 0.0 : b.back().second},
          {"p50_ms", Quantile(b, 0.50) * 1000},
          {"p99_ms", Quantile(b, 0.99) * 1000},
          {"within_10ms", FractionWithin(b, 0.01)}};
}

absl::StatusOr<std::unique_ptr<server::ServerApp>> StartLocal(const std::string& dir,
                                                              absl::Duration ttl,
                                                              absl::Duration heartbeat) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.data_dir = dir;
  options.node_lease_ttl = ttl;
  options.node_heartbeat_interval = heartbeat;
  options.workspace_workers = 16;
  return server::ServerApp::Start(options);
}

int CountReady(server::ServerApp& app) {
  int ready = 0;
  for (const auto& n : app.nodes()->ListShared("")) ready += NodeReady(*n);
  return ready;
}

bool Await(const std::function<bool()>& cond, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (cond()) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return cond();
}

}  // namespace

nlohmann::json RunReconcile(const ReconcileOptions& o) {
  const std::string dir = BenchDir(o.data_dir);
  auto app = StartLocal(dir, absl::Seconds(20), absl::Seconds(5));
  if (!app.ok()) return {{"error", app.status().ToString()}};
  const std::string address = "127.0.0.1:" + std::to_string((*app)->grpc_port());
  RealClock clock;
  agent::SimulatedRuntimeOptions instant;
  instant.pull_delay = instant.start_delay = instant.ready_delay = absl::ZeroDuration();
  agent::SimulatedFleet fleet(&clock, instant);
  const int nodes = o.workspaces + 1;
  const absl::Time reg_start = absl::Now();
  for (int i = 0; i < o.workspaces; ++i) {
    (void)fleet.Start(NodeSpec(absl::StrCat("bench-node-", i), std::to_string(i), address));
  }
  (void)fleet.Start(NodeSpec("bench-node-solo", "solo", address));
  if (!Await([&] { return CountReady(**app) >= nodes; }, absl::Minutes(5))) {
    return {{"error", absl::StrCat("only ", CountReady(**app), " of ", nodes, " nodes ready")}};
  }
  const double registration_s = absl::ToDoubleSeconds(absl::Now() - reg_start);

  FirstTimeSink ready([](const google::protobuf::Message& m) {
    return static_cast<const v1::Workspace&>(m).status().state() == "Ready";
  });
  auto watch = (*app)->workspaces()->cache()->Watch("/workspaces/", -1, &ready, false);
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = v1::WorkspaceService::NewStub(channel);
  auto make = [](const std::string& name, const std::string& slot) {
    v1::Workspace ws;
    ws.mutable_metadata()->set_name(name);
    (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["bench-slot"] = slot;
    ws.mutable_inference()->mutable_preset()->set_name("phi-3-mini-128k-instruct");
    return ws;
  };

  // Bulk: W workspaces from `clients` concurrent clients.
  std::vector<absl::Time> created(o.workspaces);
  std::atomic<int> next{0}, errors{0};
  const absl::Time bulk_start = absl::Now();
  std::vector<std::thread> clients;
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&] {
      for (int i = next++; i < o.workspaces; i = next++) {
        v1::CreateWorkspaceRequest req;
        *req.mutable_workspace() = make(absl::StrCat("bench-ws-", i), std::to_string(i));
        v1::CreateWorkspaceResponse resp;
        grpc::ClientContext ctx;
        const absl::Time t0 = absl::Now();
        if (!stub->CreateWorkspace(&ctx, req, &resp).ok()) ++errors;
        created[i] = t0;
      }
    });
  }
  for (auto& t : clients) t.join();
  const double create_s = absl::ToDoubleSeconds(absl::Now() - bulk_start);
  const bool all = ready.WaitForCount(o.workspaces, absl::Minutes(2));
  std::vector<double> bulk_ms;
  absl::Time last = bulk_start;
  for (int i = 0; i < o.workspaces; ++i) {
    if (auto t = ready.Get(absl::StrCat("bench-ws-", i))) {
      bulk_ms.push_back(absl::ToDoubleMilliseconds(*t - created[i]));
      last = std::max(last, *t);
    }
  }
  const double all_ready_s = absl::ToDoubleSeconds(last - bulk_start);
  // What the stragglers say, for the report.
  nlohmann::json stragglers = nlohmann::json::array();
  for (int i = 0; i < o.workspaces && stragglers.size() < 3; ++i) {
    const std::string name = absl::StrCat("bench-ws-", i);
    if (ready.Get(name)) continue;
    auto ws = (*app)->workspaces()->GetShared("default", name);
    std::string why = ws ? ws->status().state() : "missing";
    if (ws) {
      for (const auto& c : ws->status().conditions()) {
        if (c.status() != "True") why += "; " + c.type() + ": " + c.reason() + ": " + c.message();
      }
    }
    for (const auto& w : (*app)->workloads()->ListShared("default", [&](const v1::Workload& w) {
           return w.spec().workspace() == name;
         })) {
      why += absl::StrCat("; workload ", w->metadata().name(), " on ", w->spec().node_name(),
                          ": ", w->status().phase(), " gen ", w->metadata().generation(), "/",
                          w->status().observed_generation());
    }
    stragglers.push_back(name + ": " + why);
  }

  // One workspace alone, on the spare node, again and again, once the burst has settled
  // (the workspace queue has stayed empty for half a second).
  prometheus::Registry& registry = (*app)->metrics_registry();
  auto depth = [&] {
    for (const auto& f : registry.Collect()) {
      if (f.name != "kaito_workqueue_depth") continue;
      for (const auto& m : f.metric) {
        for (const auto& l : m.label) {
          if (l.name == "name" && l.value == "workspace") return m.gauge.value;
        }
      }
    }
    return -1.0;
  };
  absl::Time quiet_since = absl::Now();
  Await([&] {
    if (depth() != 0) quiet_since = absl::Now();
    return absl::Now() - quiet_since > absl::Milliseconds(500);
  }, absl::Seconds(60));
  const char* kWait = "kaito_workqueue_queue_duration_seconds";
  const Buckets after_bulk = Snapshot(registry, kWait, "name", "workspace");
  std::vector<double> single_ms;
  for (int k = 0; k < o.single_runs; ++k) {
    const std::string name = absl::StrCat("bench-solo-", k);
    v1::CreateWorkspaceRequest req;
    *req.mutable_workspace() = make(name, "solo");
    v1::CreateWorkspaceResponse resp;
    grpc::ClientContext ctx;
    const absl::Time t0 = absl::Now();
    if (!stub->CreateWorkspace(&ctx, req, &resp).ok()) {
      ++errors;
      continue;
    }
    if (!ready.WaitFor(name, absl::Seconds(30))) {
      ++errors;
      continue;
    }
    single_ms.push_back(absl::ToDoubleMilliseconds(*ready.Get(name) - t0));
    grpc::ClientContext dctx;
    v1::DeleteWorkspaceRequest del;
    del.set_namespace_("default");
    del.set_name(name);
    v1::DeleteWorkspaceResponse dresp;
    (void)stub->DeleteWorkspace(&dctx, del, &dresp);
    // The next one starts once this one and its workload are gone.
    Await([&] {
      return !(*app)->workspaces()->GetShared("default", name) &&
             (*app)->workloads()->ListShared("default", [&](const v1::Workload& w) {
                                  return w.spec().node_name() == "bench-node-solo";
                                }).empty();
    }, absl::Seconds(30));
  }
  const Buckets after_single = Snapshot(registry, kWait, "name", "workspace");
  watch->reset();
  nlohmann::json j;
  j["workspaces"] = o.workspaces;
  j["nodes_registered_s"] = registration_s;
  j["create_all_s"] = create_s;
  j["all_ready"] = all;
  j["all_ready_s"] = all_ready_s;
  j["bulk_create_to_ready"] = Distribution(bulk_ms);
  j["single_create_to_ready"] = Distribution(single_ms);
  // Event to reconcile start: the work queue's wait (from the add a cache event made to
  // the worker taking the key), during the burst and for workspaces alone.
  j["event_to_reconcile_burst"] = QueueWait(after_bulk);
  j["event_to_reconcile_alone"] = QueueWait(Minus(after_single, after_bulk));
  j["errors"] = errors.load();
  if (!stragglers.empty()) j["not_ready"] = stragglers;
  return j;
}

nlohmann::json RunNodeLoss(const NodeLossOptions& o) {
  const std::string dir = BenchDir(o.data_dir);
  auto app = StartLocal(dir, o.lease_ttl, o.heartbeat);
  if (!app.ok()) return {{"error", app.status().ToString()}};
  const std::string address = "127.0.0.1:" + std::to_string((*app)->grpc_port());
  RealClock clock;
  agent::SimulatedFleet fleet(&clock, agent::SimulatedRuntimeOptions{});
  for (int i = 0; i < o.nodes; ++i) {
    (void)fleet.Start(NodeSpec(absl::StrCat("loss-node-", i), std::to_string(i), address));
  }
  if (!Await([&] { return CountReady(**app) >= o.nodes; }, absl::Minutes(2))) {
    return {{"error", "nodes did not register"}};
  }
  FirstTimeSink not_ready([](const google::protobuf::Message& m) {
    return !NodeReady(static_cast<const v1::Node&>(m));
  });
  auto watch = (*app)->nodes()->cache()->Watch("/nodes/", -1, &not_ready, false);
  std::mt19937 rng(42);
  std::uniform_int_distribution<int64_t> phase(0, absl::ToInt64Microseconds(o.heartbeat));
  std::map<std::string, absl::Time> stopped;
  for (int i = 0; i < o.nodes; ++i) {
    // Stops at a random moment of the heartbeat interval, as a crash would.
    absl::SleepFor(absl::Microseconds(phase(rng)) / 4);
    const std::string name = absl::StrCat("loss-node-", i);
    stopped[name] = absl::Now();
    fleet.Stop(name);
  }
  not_ready.WaitForCount(o.nodes, o.lease_ttl + absl::Seconds(30));
  std::vector<double> ms;
  for (const auto& [name, t] : stopped) {
    if (auto d = not_ready.Get(name)) ms.push_back(absl::ToDoubleMilliseconds(*d - t));
  }
  watch->reset();
  nlohmann::json j = Distribution(ms);
  j["nodes"] = o.nodes;
  j["lease_ttl_ms"] = absl::ToDoubleMilliseconds(o.lease_ttl);
  j["heartbeat_ms"] = absl::ToDoubleMilliseconds(o.heartbeat);
  j["target_ms"] = absl::ToDoubleMilliseconds(o.lease_ttl + absl::Seconds(1));
  j["detected"] = ms.size();
  return j;
}

nlohmann::json RunFleet(const FleetOptions& o) {
  const std::string dir = BenchDir(o.data_dir);
  const std::string port_file = dir + "/port";
  ChildProcess server;
  if (absl::Status s = server.Start(
          {SelfDir() + "/kaito-server", "--listen", "127.0.0.1:0", "--metrics-listen", "",
           "--data-dir", dir, "--port-file", port_file, "--log-level", "warn",
           "--node-heartbeat-interval", absl::FormatDuration(o.heartbeat), "--node-lease-ttl",
           absl::FormatDuration(o.lease_ttl)},
          port_file, absl::Seconds(30));
      !s.ok()) {
    return {{"error", s.ToString()}};
  }
  const pid_t pid = server.pid();
  const int port = server.port();
  const std::string address = "127.0.0.1:" + std::to_string(port);
  const ProcSample idle = SampleProcess(pid);

  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto nodes = v1::NodeService::NewStub(channel);
  auto count = [&](int* ready_out) {
    int total = 0, ready = 0;
    std::string token;
    do {
      v1::ListRequest req;
      req.set_page_size(500);
      req.set_page_token(token);
      v1::ListNodesResponse resp;
      grpc::ClientContext ctx;
      if (!nodes->ListNodes(&ctx, req, &resp).ok()) break;
      for (const auto& n : resp.items()) {
        ++total;
        ready += NodeReady(n);
      }
      token = resp.next_page_token();
    } while (!token.empty());
    if (ready_out) *ready_out = ready;
    return total;
  };

  RealClock clock;
  auto fleet = std::make_unique<agent::SimulatedFleet>(&clock, agent::SimulatedRuntimeOptions{});
  const absl::Time reg_start = absl::Now();
  for (int i = 0; i < o.agents; ++i) {
    (void)fleet->Start(NodeSpec(absl::StrCat("fleet-node-", i), std::to_string(i), address));
  }
  int ready = 0;
  Await([&] { return count(&ready) >= o.agents && ready >= o.agents; }, absl::Minutes(10));
  const double registration_s = absl::ToDoubleSeconds(absl::Now() - reg_start);
  const ProcSample registered = SampleProcess(pid);

  // Steady state: heartbeats only.
  const absl::Time steady_start = absl::Now();
  const ProcSample begin = SampleProcess(pid);
  int64_t max_rss = begin.rss_bytes;
  int min_ready = o.agents;
  absl::Time next_check = absl::Now();
  while (absl::Now() - steady_start < o.duration) {
    absl::SleepFor(absl::Seconds(1));
    max_rss = std::max(max_rss, SampleProcess(pid).rss_bytes);
    if (absl::Now() >= next_check) {
      // A false NotReady: any node not Ready while its agent runs.
      count(&ready);
      min_ready = std::min(min_ready, ready);
      next_check = absl::Now() + absl::Seconds(10);
    }
  }
  const ProcSample end = SampleProcess(pid);
  const double steady_s = absl::ToDoubleSeconds(absl::Now() - steady_start);
  count(&ready);
  min_ready = std::min(min_ready, ready);
  auto events = v1::NodeService::NewStub(channel);
  v1::ListEventsRequest ereq;
  ereq.set_involved_kind("Node");
  v1::ListEventsResponse eresp;
  grpc::ClientContext ectx;
  ectx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  (void)events->ListEvents(&ectx, ereq, &eresp);
  int not_ready_events = 0;
  for (const auto& e : eresp.items()) not_ready_events += e.reason() == "NodeNotReady";

  fleet.reset();
  server.Stop();
  nlohmann::json j;
  j["agents"] = o.agents;
  j["heartbeat_s"] = absl::ToDoubleSeconds(o.heartbeat);
  j["lease_ttl_s"] = absl::ToDoubleSeconds(o.lease_ttl);
  j["registration_s"] = registration_s;
  j["registration_cpu_s"] = registered.cpu_seconds - idle.cpu_seconds;
  j["steady_s"] = steady_s;
  j["server_cpu_percent_of_one_core"] = 100.0 * (end.cpu_seconds - begin.cpu_seconds) / steady_s;
  j["server_rss_mb_idle"] = static_cast<double>(idle.rss_bytes) / 1e6;
  j["server_rss_mb_max"] = static_cast<double>(max_rss) / 1e6;
  j["server_rss_mb_end"] = static_cast<double>(end.rss_bytes) / 1e6;
  j["min_ready_nodes"] = min_ready;
  j["false_not_ready"] = o.agents - min_ready;
  j["node_not_ready_events"] = not_ready_events;
  return j;
}

}  // namespace kaito::bench
