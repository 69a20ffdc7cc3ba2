// kaito-bench: load generators that print figures (and JSON with --json). Not a test.
//
//   kaito-bench fleet | reconcile | nodeloss: reconciliation at scale (reconcile_bench.h).
//   kaito-bench api   N concurrent gRPC clients against kaito-server on this machine:
//                     durable Create, Get, and watch fan-out (W watchers x U updates),
//                     next to two floors: a trivial RPC (GetVersion) and a raw SQLite
//                     commit loop, so that each figure reads as a ratio to its limit.
//
// By default the server runs in this process on 127.0.0.1:0 with the SQLite store in a
// temporary directory (real gRPC over loopback TCP, real fsync); --server targets a
// running kaito-server instead (Create/Get/watch only).
//
//   kaito-bench shim  the Kubernetes shim over the same in-process server: its GET, POST
//                     and watches next to the gRPC calls they map onto (shim_bench.h).
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/daemon.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "kaito/v1/system.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "server/server_app.h"
#include "tools/bench/agent_bench.h"
#include "tools/bench/api_workload.h"
#include "tools/bench/azure_bench.h"
#include "tools/bench/reconcile_bench.h"
#include "tools/bench/shim_bench.h"
#include "tools/bench/store_bench.h"

namespace kaito::bench {
namespace {

// The floor of durable writes: one row per transaction, WAL, synchronous=FULL.
Figures SqliteFloor(const std::string& dir, absl::Duration duration) {
  Figures f;
  f.name = "floor: sqlite commit (1 row)";
  sqlite3* db = nullptr;
  const std::string path = dir + "/floor.db";
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE t(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO t(k, v) VALUES (?1, ?2)", -1, &stmt, nullptr);
  const std::string value(512, 'x');
  const auto begin = Clock::now();
  const auto end = begin + absl::ToChronoMilliseconds(duration);
  for (int64_t i = 0; Clock::now() < end; ++i) {
    const auto t0 = Clock::now();
    const std::string key = "k" + std::to_string(i % 5000);
    sqlite3_exec(db, "BEGIN", nullptr, nullptr, nullptr);
    sqlite3_bind_text(stmt, 1, key.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_blob(stmt, 2, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
    if (sqlite3_step(stmt) != SQLITE_DONE) ++f.errors;
    sqlite3_reset(stmt);
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) ++f.errors;
    f.latencies_us.push_back(Micros(Clock::now() - t0));
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  f.ops = static_cast<int64_t>(f.latencies_us.size());
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return f;
}

// One watch stream that records, per event revision, when it arrived.
class Watcher : public grpc::ClientReadReactor<v1::WorkspaceEvent> {
 public:
  Watcher(v1::WorkspaceService::Stub* stub, const v1::WatchWorkspacesRequest& req,
          std::atomic<int>* ready)
      : ready_(ready) {
    stub->async()->WatchWorkspaces(&ctx_, &req, this);
    StartRead(&event_);
    StartCall();
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    if (event_.type() == v1::BOOKMARK) {
      ++*ready_;
    } else if (event_.type() == v1::MODIFIED) {
      absl::MutexLock lock(&mu_);
      arrivals_.emplace_back(std::stoll(event_.resource_version()), Clock::now());
    }
    StartRead(&event_);
  }
  void OnDone(const grpc::Status&) override {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  void Cancel() { ctx_.TryCancel(); }
  bool done() {
    absl::MutexLock lock(&mu_);
    return done_;
  }
  std::vector<std::pair<int64_t, Clock::time_point>> arrivals() {
    absl::MutexLock lock(&mu_);
    return arrivals_;
  }

 private:
  grpc::ClientContext ctx_;
  v1::WorkspaceEvent event_;
  std::atomic<int>* ready_;
  absl::Mutex mu_;
  std::vector<std::pair<int64_t, Clock::time_point>> arrivals_;
  bool done_ = false;
};

nlohmann::json WatchFanout(const std::shared_ptr<grpc::Channel>& channel, int watchers,
                           int updates) {
  auto stub = v1::WorkspaceService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::CreateWorkspaceRequest req;
    *req.mutable_workspace() = MakeWorkspace("watched");
    v1::CreateWorkspaceResponse resp;
    stub->CreateWorkspace(&ctx, req, &resp);
  }
  v1::WatchWorkspacesRequest req;
  req.set_name("watched");
  std::atomic<int> ready{0};
  std::vector<std::unique_ptr<Watcher>> ws;
  for (int i = 0; i < watchers; ++i)
    ws.push_back(std::make_unique<Watcher>(stub.get(), req, &ready));
  const auto wait_end = Clock::now() + std::chrono::seconds(60);
  while (ready.load() < watchers && Clock::now() < wait_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // Updates one after another from one client; remember when each was sent.
  std::map<int64_t, Clock::time_point> sent;
  v1::Workspace current;
  {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest get;
    get.set_name("watched");
    stub->GetWorkspace(&ctx, get, &current);
  }
  const auto begin = Clock::now();
  int64_t update_errors = 0;
  for (int u = 0; u < updates; ++u) {
    (*current.mutable_metadata()->mutable_labels())["n"] = std::to_string(u);
    grpc::ClientContext ctx;
    v1::UpdateWorkspaceRequest up;
    *up.mutable_workspace() = current;
    v1::UpdateWorkspaceResponse resp;
    const auto t0 = Clock::now();
    if (!stub->UpdateWorkspace(&ctx, up, &resp).ok()) {
      ++update_errors;
      continue;
    }
    current = resp.workspace();
    sent[std::stoll(current.metadata().resource_version())] = t0;
  }
  const double update_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  // Wait for delivery to finish (or a deadline), then collect.
  const auto deliver_end = Clock::now() + std::chrono::seconds(120);
  auto delivered = [&] {
    size_t n = 0;
    for (auto& w : ws) n += w->arrivals().size();
    return n;
  };
  const size_t expected = static_cast<size_t>(watchers) * sent.size();
  while (delivered() < expected && Clock::now() < deliver_end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const double all_seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  Figures f;
  f.name = "watch delivery";
  int complete_watchers = 0;
  for (auto& w : ws) {
    auto arrivals = w->arrivals();
    size_t got = 0;
    for (const auto& [rev, at] : arrivals) {
      auto it = sent.find(rev);
      if (it == sent.end()) continue;
      f.latencies_us.push_back(Micros(at - it->second));
      ++got;
    }
    if (got == sent.size()) ++complete_watchers;
  }
  for (auto& w : ws) w->Cancel();
  for (auto& w : ws) {
    while (!w->done()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  f.ops = static_cast<int64_t>(f.latencies_us.size());
  f.seconds = all_seconds;
  f.errors = static_cast<int64_t>(expected) - f.ops + update_errors;
  nlohmann::json j = f.ToJson();
  j["watchers"] = watchers;
  j["updates"] = updates;
  j["watchers_with_every_update"] = complete_watchers;
  j["update_seconds"] = update_seconds;
  j["events_delivered"] = f.ops;
  j["events_expected"] = expected;
  return j;
}

int64_t MaxRssKiB() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace
}  // namespace kaito::bench

int main(int argc, char** argv) {
  kaito::DisableMutexDeadlockDetection();
  using namespace kaito::bench;
  CLI::App app{"kaito-bench: benchmarks of the Kaito control plane"};
  app.require_subcommand(1);
  int clients = 64, watchers = 1000, updates = 1000, channels = 4;
  double seconds = 5;
  bool json = false;
  std::string server, data_dir;
  auto* api = app.add_subcommand("api", "Create/Get/Watch throughput and latency over gRPC");
  api->add_option("--clients", clients, "Concurrent clients (one RPC outstanding each)")
      ->capture_default_str();
  api->add_option("--channels", channels, "gRPC channels (TCP connections) the clients share")
      ->capture_default_str();
  api->add_option("--seconds", seconds, "Duration of each closed-loop phase")
      ->capture_default_str();
  api->add_option("--watchers", watchers, "Watch streams in the fan-out phase")
      ->capture_default_str();
  api->add_option("--updates", updates, "Updates in the fan-out phase")->capture_default_str();
  api->add_option("--server", server, "Target a running kaito-server instead of an in-process one");
  api->add_option("--data-dir", data_dir, "Where the in-process server keeps its store");
  api->add_flag("--json", json, "Print one JSON document instead of text");

  FleetOptions fleet_options;
  std::string fleet_duration = "10m", fleet_heartbeat = "5s", fleet_ttl = "20s";
  auto* fleet = app.add_subcommand(
      "fleet", "N simulated agents against a kaito-server process: its CPU, memory, NotReady");
  fleet->add_option("--agents", fleet_options.agents, "Simulated agents")->capture_default_str();
  fleet->add_option("--duration", fleet_duration, "Steady phase after registration")
      ->capture_default_str();
  fleet->add_option("--heartbeat", fleet_heartbeat, "Agents' heartbeat interval")
      ->capture_default_str();
  fleet->add_option("--lease-ttl", fleet_ttl, "Node lease TTL")->capture_default_str();
  fleet->add_option("--data-dir", fleet_options.data_dir, "The server's data directory");
  fleet->add_flag("--json", json, "Print JSON");

  ReconcileOptions reconcile_options;
  auto* reconcile = app.add_subcommand(
      "reconcile", "W workspaces on W pre-registered simulated nodes: time to all Ready");
  reconcile->add_option("--workspaces", reconcile_options.workspaces, "Workspaces (and nodes)")
      ->capture_default_str();
  reconcile->add_option("--clients", reconcile_options.clients, "Concurrent creating clients")
      ->capture_default_str();
  reconcile
      ->add_option("--single-runs", reconcile_options.single_runs,
                   "Runs of one workspace alone, create to ready")
      ->capture_default_str();
  reconcile->add_option("--data-dir", reconcile_options.data_dir, "The server's data directory");
  reconcile->add_flag("--json", json, "Print JSON");

  ShimBenchOptions shim_options;
  auto* shim = app.add_subcommand(
      "shim", "The Kubernetes shim's create/get/watch against the gRPC API under it");
  shim->add_option("--clients", shim_options.clients,
                   "Concurrent clients (one call outstanding each)")
      ->capture_default_str();
  shim->add_option("--channels", shim_options.channels,
                   "gRPC channels of the baseline clients (the shim has its own)")
      ->capture_default_str();
  shim->add_option("--seconds", shim_options.seconds, "Duration of each closed-loop phase")
      ->capture_default_str();
  shim->add_option("--watches", shim_options.watches, "HTTP watch streams held at once")
      ->capture_default_str();
  shim->add_option("--updates", shim_options.updates, "Updates of the watched workspace")
      ->capture_default_str();
  shim->add_flag("--paced", shim_options.paced,
                 "Send each update only after every watcher got the one before");
  shim->add_option("--watch-connects", shim_options.watch_connects,
                   "Watch connections opened at a time (0: all at once)")
      ->capture_default_str();
  shim->add_option("--accept-encoding", shim_options.accept_encoding,
                   "Accept-Encoding of the HTTP clients (kubectl: gzip; identity: none)")
      ->capture_default_str();
  shim->add_option("--max-connections", shim_options.max_connections,
                   "The shim's connection (worker) limit")
      ->capture_default_str();
  shim->add_option("--data-dir", shim_options.data_dir,
                   "Where the in-process server keeps its store");
  bool no_read_cache = false;
  shim->add_flag("--no-read-cache", no_read_cache,
                 "Every GET of the shim asks kaito-server (its read cache off)");
  shim->add_flag("--json", shim_options.json, "Print one JSON document instead of text");

  AzureBenchOptions azure_options;
  std::string azure_latency = "50ms", azure_operation = "2s";
  auto* azure = app.add_subcommand(
      "azure", "The Azure provider against an in-process fake ARM: added time, threads, memory");
  azure->add_option("--claims", azure_options.claims, "Claims created at once")
      ->capture_default_str();
  azure->add_option("--latency", azure_latency, "The fake's time per request")
      ->capture_default_str();
  azure->add_option("--operation", azure_operation, "The fake's create operation time")
      ->capture_default_str();
  azure
      ->add_option("--requests-per-second", azure_options.requests_per_second,
                   "The provider's client-side rate limit")
      ->capture_default_str();
  azure->add_option("--burst", azure_options.burst, "Its burst")->capture_default_str();
  azure->add_flag("--json", json, "Print JSON");

  AgentBenchOptions agent_options;
  std::string agent_idle = "20s";
  auto* agent = app.add_subcommand(
      "agent", "The real agent on a container engine: idle memory and CPU, time a start adds");
  agent->add_option("--docker-host", agent_options.docker_host, "unix:///PATH of the engine")
      ->required();
  agent->add_option("--image", agent_options.image, "An image with sleep (busybox)")->required();
  agent->add_option("--starts", agent_options.starts, "Workload starts measured")
      ->capture_default_str();
  agent->add_option("--idle", agent_idle, "Idle window measured")->capture_default_str();
  agent->add_option("--data-dir", agent_options.data_dir, "The server's data directory");
  agent->add_flag("--json", json, "Print JSON");

  NodeLossOptions loss_options;
  std::string loss_ttl = "5s", loss_heartbeat = "1s";
  auto* loss = app.add_subcommand("nodeloss", "Agents stopped at random: time to NotReady");
  loss->add_option("--nodes", loss_options.nodes, "Nodes")->capture_default_str();
  loss->add_option("--lease-ttl", loss_ttl, "Node lease TTL")->capture_default_str();
  loss->add_option("--heartbeat", loss_heartbeat, "Heartbeat interval")->capture_default_str();
  loss->add_option("--data-dir", loss_options.data_dir, "The server's data directory");
  loss->add_flag("--json", json, "Print JSON");
  StoreBenchOptions store_options;
  auto* store = app.add_subcommand(
      "store",
      "Durable create/get through kaito-server on etcd, beside etcd's own put rate and "
      "the SQLite backend");
  store
      ->add_option("--clients", store_options.clients,
                   "Concurrent clients (one call outstanding each)")
      ->capture_default_str();
  store->add_option("--channels", store_options.channels, "Connections the clients share")
      ->capture_default_str();
  store->add_option("--seconds", store_options.seconds, "Duration of each phase")
      ->capture_default_str();
  store->add_option("--etcd", store_options.etcd,
                    "H:P,H:P of a running etcd (default: start one member here)");
  store->add_option("--data-dir", store_options.data_dir, "Where the servers and etcd keep data");
  store->add_flag("--check-perf", store_options.check_perf,
                  "Also run `etcdctl check perf --load s` on the same etcd (60 s)");
  store->add_flag("--json", json, "Print JSON");
  CLI11_PARSE(app, argc, argv);

  auto duration = [](const std::string& text, absl::Duration* out) {
    if (!absl::ParseDuration(text, out) || *out <= absl::ZeroDuration()) {
      std::fprintf(stderr, "kaito-bench: \"%s\" is not a duration\n", text.c_str());
      std::exit(2);
    }
  };
  auto emit = [&](const nlohmann::json& j) {
    std::printf("%s\n", j.dump(json ? -1 : 2).c_str());
    return j.contains("error") ? 1 : 0;
  };
  if (fleet->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    duration(fleet_duration, &fleet_options.duration);
    duration(fleet_heartbeat, &fleet_options.heartbeat);
    duration(fleet_ttl, &fleet_options.lease_ttl);
    return emit(RunFleet(fleet_options));
  }
  if (reconcile->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    return emit(RunReconcile(reconcile_options));
  }
  if (shim->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    shim_options.read_cache = !no_read_cache;
    return RunShimBench(shim_options);
  }
  if (agent->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    duration(agent_idle, &agent_options.idle);
    return emit(RunAgentBench(agent_options));
  }
  if (azure->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    duration(azure_latency, &azure_options.latency);
    duration(azure_operation, &azure_options.operation);
    return emit(RunAzureBench(azure_options));
  }
  if (store->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    nlohmann::json j = RunStoreBench(store_options);
    if (!json && j.contains("results")) {
      for (const char* key :
           {"etcd_put", "etcd_txn", "create_etcd", "get_etcd", "create_sqlite", "get_sqlite"}) {
        if (!j["results"].contains(key)) continue;
        const nlohmann::json& r = j["results"][key];
        Print(r);
        if (!r.contains("cpu_us_per_op")) continue;
        std::printf("%-28s cpu per op: this process %.0f us, etcd %.0f us\n", "",
                    r["cpu_us_per_op"].value("this_process", 0.0),
                    r["cpu_us_per_op"].value("etcd", 0.0));
      }
      for (auto& [k, v] : j["ratios"].items())
        std::printf("%-40s %.3f\n", k.c_str(), v.get<double>());
      if (j["results"].contains("etcdctl_check_perf")) {
        for (auto& line : j["results"]["etcdctl_check_perf"]["verdicts"]) {
          std::printf("etcdctl check perf: %s\n", line.get<std::string>().c_str());
        }
      }
      return j.contains("error") ? (std::fprintf(stderr, "%s\n", j["error"].dump().c_str()), 1) : 0;
    }
    return emit(j);
  }
  if (loss->parsed()) {
    (void)kaito::SetupLogging("warn", "text", "kaito-bench");
    duration(loss_ttl, &loss_options.lease_ttl);
    duration(loss_heartbeat, &loss_options.heartbeat);
    return emit(RunNodeLoss(loss_options));
  }

  // Logs go to stderr so that --json output stays clean.
  (void)kaito::SetupLogging("warn", "text", "kaito-bench");
  const absl::Duration phase = absl::Milliseconds(static_cast<int64_t>(seconds * 1000));
  std::unique_ptr<kaito::server::ServerApp> local;
  std::string tmp;
  if (server.empty()) {
    if (data_dir.empty()) {
      char pattern[] = "/tmp/kaito-bench-XXXXXX";
      tmp = mkdtemp(pattern);
      data_dir = tmp;
    }
    auto started = kaito::server::ServerApp::Start(ApiServerOptions(data_dir));
    if (!started.ok()) {
      std::fprintf(stderr, "cannot start server: %s\n", started.status().ToString().c_str());
      return 1;
    }
    local = std::move(*started);
    server = "127.0.0.1:" + std::to_string(local->grpc_port());
  }
  std::vector<std::shared_ptr<grpc::Channel>> chans;
  std::vector<std::unique_ptr<kaito::v1::SystemService::Stub>> sys;
  for (int i = 0; i < std::max(1, channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // One TCP connection per channel.
    chans.push_back(grpc::CreateCustomChannel(server, grpc::InsecureChannelCredentials(), args));
    sys.push_back(kaito::v1::SystemService::NewStub(chans.back()));
  }
  WorkspaceStubs stubs = DialWorkspaces(server, channels);
  nlohmann::json out;
  out["machine"]["cpus"] = std::thread::hardware_concurrency();
  out["config"] = {{"clients", clients},
                   {"channels", channels},
                   {"seconds", seconds},
                   {"watchers", watchers},
                   {"updates", updates},
                   {"server", server},
                   {"in_process", static_cast<bool>(local)}};
  auto report = [&](const std::string& key, nlohmann::json j) {
    if (!json) Print(j);
    out["results"][key] = std::move(j);
  };

  // Floor 1: a trivial RPC.
  {
    struct Call {
      grpc::ClientContext ctx;
      kaito::v1::GetVersionRequest req;
      kaito::v1::VersionInfo resp;
    };
    auto f = ClosedLoop("floor: trivial rpc", clients, phase,
                        [&](int c, int64_t, std::function<void(bool)> done) {
                          auto* call = new Call;
                          sys[c % sys.size()]->async()->GetVersion(
                              &call->ctx, &call->req, &call->resp, [call, done](grpc::Status s) {
                                done(s.ok());
                                delete call;
                              });
                        });
    report("floor_rpc", f.ToJson());
  }
  // Floor 2: raw SQLite commits.
  if (local) report("floor_sqlite", SqliteFloor(data_dir, phase).ToJson());

  // Durable creates.
  std::atomic<int64_t> created{0};
  {
    auto f = CreateLoop("create (durable)", stubs, clients, phase, &created);
    nlohmann::json j = f.ToJson();
    if (local) AddStoreFigures(local->store(), &j);
    if (f.errors > 0) {
      std::fprintf(stderr, "kaito-bench: %lld creates failed; figures are not valid\n",
                   static_cast<long long>(f.errors));
    }
    report("create", j);
  }
  // Gets of existing objects.
  report("get", GetLoop("get", stubs, clients, phase, created.load()).ToJson());
  // Watch fan-out.
  if (watchers > 0 && updates > 0) {
    auto j = WatchFanout(chans[0], watchers, updates);
    if (!json) {
      Print(j);
      std::printf(
          "%-28s %d watchers x %d updates: %lld/%lld events, %d watchers got every update\n", "",
          watchers, updates, static_cast<long long>(j["events_delivered"].get<int64_t>()),
          static_cast<long long>(j["events_expected"].get<size_t>()),
          j["watchers_with_every_update"].get<int>());
    }
    out["results"]["watch"] = j;
  }
  out["max_rss_kib"] = MaxRssKiB();
  if (json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("max RSS (client and server together): %lld KiB\n",
                static_cast<long long>(out["max_rss_kib"].get<int64_t>()));
  }
  chans.clear();
  stubs.clear();
  sys.clear();
  local.reset();
  if (!tmp.empty()) std::filesystem::remove_all(tmp);
  return 0;
}
