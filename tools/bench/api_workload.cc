#include "tools/bench/api_workload.h"

#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "server/store/etcd_store.h"
#include "server/store/sqlite_store.h"

namespace kaito::bench {

nlohmann::json Figures::ToJson() {
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) {
    if (latencies_us.empty()) return 0.0;
    size_t i = std::min(latencies_us.size() - 1,
                        static_cast<size_t>(p * static_cast<double>(latencies_us.size())));
    return latencies_us[i];
  };
  nlohmann::json j;
  j["name"] = name;
  j["ops"] = ops;
  j["errors"] = errors;
  j["seconds"] = seconds;
  j["ops_per_second"] = seconds > 0 ? static_cast<double>(ops) / seconds : 0;
  j["p50_ms"] = pct(0.50) / 1000;
  j["p99_ms"] = pct(0.99) / 1000;
  j["max_ms"] = latencies_us.empty() ? 0 : latencies_us.back() / 1000;
  return j;
}

void Print(const nlohmann::json& j) {
  std::printf("%-28s %10.0f ops/s   p50 %8.3f ms   p99 %8.3f ms   (%lld ops, %lld errors)\n",
              j["name"].get<std::string>().c_str(), j["ops_per_second"].get<double>(),
              j["p50_ms"].get<double>(), j["p99_ms"].get<double>(),
              static_cast<long long>(j["ops"].get<int64_t>()),
              static_cast<long long>(j["errors"].get<int64_t>()));
  std::fflush(stdout);
}

v1::Workspace MakeWorkspace(const std::string& name) {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name(name);
  (*ws.mutable_metadata()->mutable_labels())["bench"] = "api";
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["apps"] = name;
  ws.mutable_inference()->mutable_preset()->set_name("phi-4-mini-instruct");
  return ws;
}

server::ServerOptions ApiServerOptions(const std::string& data_dir) {
  server::ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = "";
  options.data_dir = data_dir;
  options.dev = true;           // Node auto-provisioning: the workspaces name an instance type.
  options.controllers = false;  // The API alone: its floor, without reconciliation.
  return options;
}

Figures ClosedLoop(const std::string& name, int clients, absl::Duration duration,
                   const std::function<void(int, int64_t, std::function<void(bool)>)>& start,
                   const PhaseMark& mark) {
  Figures f;
  f.name = name;
  std::atomic<bool> stop{false};
  std::atomic<int> running{clients};
  std::vector<std::vector<double>> lat(clients);
  std::vector<int64_t> errors(clients, 0);
  std::atomic<int64_t> seq{0};
  std::function<void(int)> issue = [&](int c) {
    const auto t0 = Clock::now();
    start(c, seq++, [&, c, t0](bool ok) {
      lat[c].push_back(Micros(Clock::now() - t0));
      if (!ok) ++errors[c];
      if (stop.load()) {
        --running;
        return;
      }
      issue(c);
    });
  };
  if (mark) mark(true);
  const auto begin = Clock::now();
  for (int c = 0; c < clients; ++c) issue(c);
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(duration));
  stop = true;
  while (running.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  f.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  if (mark) mark(false);
  for (int c = 0; c < clients; ++c) {
    f.latencies_us.insert(f.latencies_us.end(), lat[c].begin(), lat[c].end());
    f.errors += errors[c];
  }
  f.ops = static_cast<int64_t>(f.latencies_us.size()) - f.errors;
  return f;
}

namespace {

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

Figures ThreadedClosedLoop(const std::string& name, int clients, absl::Duration duration,
                           const std::function<void(int)>& prepare,
                           const std::function<bool(int, int64_t)>& call, const PhaseMark& mark) {
  Figures f;
  f.name = name;
  std::atomic<int> prepared{0};
  std::atomic<bool> go{false}, stop{false};
  std::atomic<int64_t> seq{0};
  std::vector<std::vector<double>> lat(clients);
  std::vector<int64_t> errors(clients, 0);
  std::vector<double> cpu(clients, 0);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      pthread_setname_np(pthread_self(), "bench-client");
      prepare(c);
      ++prepared;
      while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const double cpu0 = ThreadCpuSeconds();
      while (!stop.load()) {
        const auto t0 = Clock::now();
        const bool ok = call(c, seq++);
        lat[c].push_back(Micros(Clock::now() - t0));
        if (!ok) ++errors[c];
      }
      cpu[c] = ThreadCpuSeconds() - cpu0;
    });
  }
  while (prepared.load() < clients) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (mark) mark(true);
  const auto begin = Clock::now();
  go = true;
  std::this_thread::sleep_for(absl::ToChronoMilliseconds(duration));
  stop = true;
  for (auto& t : threads) t.join();
  f.seconds = std::chrono::duration<double>(Clock::now() - begin).count();
  if (mark) mark(false);
  for (int c = 0; c < clients; ++c) {
    f.latencies_us.insert(f.latencies_us.end(), lat[c].begin(), lat[c].end());
    f.errors += errors[c];
    f.client_cpu_seconds += cpu[c];
  }
  f.ops = static_cast<int64_t>(f.latencies_us.size()) - f.errors;
  return f;
}

void AddStoreFigures(server::store::Store* store, nlohmann::json* j) {
  if (auto* etcd = dynamic_cast<server::store::EtcdStore*>(store)) {
    (*j)["store_writes"] = etcd->stats().writes;
  } else if (auto* sqlite = dynamic_cast<server::store::SqliteStore*>(store)) {
    const auto st = sqlite->stats();
    (*j)["store_commits"] = st.commits;
    (*j)["store_writes"] = st.writes;
    (*j)["writes_per_commit"] = st.commits ? static_cast<double>(st.writes) / st.commits : 0;
  }
}

WorkspaceStubs DialWorkspaces(const std::string& target, int channels) {
  WorkspaceStubs stubs;
  for (int i = 0; i < std::max(1, channels); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // One TCP connection per channel.
    stubs.push_back(v1::WorkspaceService::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args)));
  }
  return stubs;
}

Figures CreateLoop(const std::string& name, const WorkspaceStubs& stubs, int clients,
                   absl::Duration duration, std::atomic<int64_t>* created, const PhaseMark& mark) {
  struct Call {
    grpc::ClientContext ctx;
    v1::CreateWorkspaceRequest req;
    v1::CreateWorkspaceResponse resp;
  };
  return ClosedLoop(
      name, clients, duration,
      [&](int c, int64_t seq, std::function<void(bool)> done) {
        auto* call = new Call;
        *call->req.mutable_workspace() = MakeWorkspace("ws-" + std::to_string(seq));
        stubs[c % stubs.size()]->async()->CreateWorkspace(&call->ctx, &call->req, &call->resp,
                                                          [call, done, created](grpc::Status s) {
                                                            if (s.ok()) ++*created;
                                                            done(s.ok());
                                                            delete call;
                                                          });
      },
      mark);
}

Figures GetLoop(const std::string& name, const WorkspaceStubs& stubs, int clients,
                absl::Duration duration, int64_t existing, const PhaseMark& mark) {
  struct Call {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest req;
    v1::Workspace resp;
  };
  const int64_t n = std::max<int64_t>(1, existing);
  return ClosedLoop(
      name, clients, duration,
      [&](int c, int64_t seq, std::function<void(bool)> done) {
        auto* call = new Call;
        call->req.set_name("ws-" + std::to_string(seq % n));
        stubs[c % stubs.size()]->async()->GetWorkspace(&call->ctx, &call->req, &call->resp,
                                                       [call, done](grpc::Status s) {
                                                         done(s.ok());
                                                         delete call;
                                                       });
      },
      mark);
}

}  // namespace kaito::bench
