#include "tools/bench/store_bench.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/loopback_port.h"
#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"
#include "tools/bench/api_workload.h"
#include "tools/bench/child_process.h"

namespace kaito::bench {
namespace {

std::vector<std::shared_ptr<grpc::Channel>> EtcdChannels(const std::string& endpoints, int n) {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < std::max(1, n); ++i) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // One TCP connection per channel.
    channels.push_back(
        grpc::CreateCustomChannel("ipv4:" + endpoints, grpc::InsecureChannelCredentials(), args));
  }
  return channels;
}

// Waits until etcd answers a Range (it serves clients once it has a leader).
bool WaitEtcd(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  auto kv = etcdserverpb::KV::NewStub(channel);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    etcdserverpb::RangeRequest req;
    req.set_key("/");
    req.set_count_only(true);
    etcdserverpb::RangeResponse resp;
    if (kv->Range(&ctx, req, &resp).ok()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// The key and value bytes of the workspace `name` as the etcd store keeps it under
// `prefix`, read back from etcd; {0, 0} when it is not there.
std::pair<size_t, size_t> StoredSize(const std::shared_ptr<grpc::Channel>& channel,
                                     const std::string& prefix, const std::string& name) {
  auto kv = etcdserverpb::KV::NewStub(channel);
  grpc::ClientContext ctx;
  etcdserverpb::RangeRequest req;
  req.set_key(prefix);
  std::string end = prefix;
  end.back() = static_cast<char>(end.back() + 1);
  req.set_range_end(end);
  etcdserverpb::RangeResponse resp;
  if (!kv->Range(&ctx, req, &resp).ok()) return {0, 0};
  for (const auto& item : resp.kvs()) {
    if (item.key().find(name) != std::string::npos) return {item.key().size(), item.value().size()};
  }
  return {0, 0};
}

// New keys put straight to etcd: a plain Put (etcd's own rate), or `as_txn` shaped as the
// etcd store writes a create (compare the key's create revision with 0, put; else read it).
Figures RawPuts(const std::vector<std::shared_ptr<grpc::Channel>>& channels, int clients,
                absl::Duration duration, size_t key_size, size_t value_size, bool as_txn,
                const PhaseMark& mark) {
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> stubs;
  for (const auto& c : channels) stubs.push_back(etcdserverpb::KV::NewStub(c));
  const std::string value(value_size, 'v');
  const std::string key_base = as_txn ? "/bench-raw-txn/" : "/bench-raw/";
  struct Call {
    grpc::ClientContext ctx;
    etcdserverpb::PutRequest req;
    etcdserverpb::PutResponse resp;
    etcdserverpb::TxnRequest txn;
    etcdserverpb::TxnResponse txn_resp;
  };
  return ClosedLoop(
      as_txn ? "etcd txn create (raw)" : "etcd put (raw)", clients, duration,
      [&](int c, int64_t seq, std::function<void(bool)> done) {
        auto* call = new Call;
        std::string key = absl::StrCat(key_base, seq);
        if (key.size() < key_size) key.append(key_size - key.size(), '-');
        auto* stub = stubs[c % stubs.size()].get();
        if (!as_txn) {
          call->req.set_key(std::move(key));
          call->req.set_value(value);
          stub->async()->Put(&call->ctx, &call->req, &call->resp, [call, done](grpc::Status s) {
            done(s.ok());
            delete call;
          });
          return;
        }
        auto* compare = call->txn.add_compare();
        compare->set_key(key);
        compare->set_target(etcdserverpb::Compare::CREATE);
        compare->set_result(etcdserverpb::Compare::EQUAL);
        compare->set_create_revision(0);
        auto* put = call->txn.add_success()->mutable_request_put();
        put->set_key(key);
        put->set_value(value);
        call->txn.add_failure()->mutable_request_range()->set_key(std::move(key));
        stub->async()->Txn(&call->ctx, &call->txn, &call->txn_resp, [call, done](grpc::Status s) {
          done(s.ok() && call->txn_resp.succeeded());
          delete call;
        });
      },
      mark);
}

// Process CPU per operation of a phase: this process (load generator and, for the server
// phases, kaito-server) and etcd when it runs here. `start` marks a phase's beginning.
class CpuMeter {
 public:
  explicit CpuMeter(pid_t etcd) : etcd_(etcd) {}
  PhaseMark Mark() {
    return [this](bool begin) {
      const ProcSample self = SampleProcess(getpid());
      const ProcSample etcd = etcd_ > 0 ? SampleProcess(etcd_) : ProcSample{};
      if (begin) {
        self0_ = self.cpu_seconds;
        etcd0_ = etcd.cpu_seconds;
      } else {
        self_ = self.cpu_seconds - self0_;
        etcd_cpu_ = etcd.cpu_seconds - etcd0_;
      }
    };
  }
  // Adds cpu_us_per_op {"this_process", "etcd"} to a phase's figures.
  nlohmann::json With(Figures f) const {
    nlohmann::json j = f.ToJson();
    const double ops = static_cast<double>(std::max<int64_t>(f.ops, 1));
    j["cpu_us_per_op"]["this_process"] = self_ * 1e6 / ops;
    if (etcd_ > 0) j["cpu_us_per_op"]["etcd"] = etcd_cpu_ * 1e6 / ops;
    return j;
  }

 private:
  pid_t etcd_;
  double self0_ = 0, etcd0_ = 0, self_ = 0, etcd_cpu_ = 0;
};

// Creates then gets through an in-process kaito-server on `store`; the figures go to
// results["create_<tag>"] and ["get_<tag>"]. Returns an error text, or "".
std::string ServerPhases(const StoreBenchOptions& options, const std::string& dir,
                         const std::string& store, const std::string& prefix,
                         const std::string& tag,
                         const std::function<void(server::ServerApp&)>& before, CpuMeter& cpu,
                         nlohmann::json* results) {
  server::ServerOptions server_options = ApiServerOptions(dir);
  server_options.store = store;
  server_options.etcd_prefix = prefix;
  auto started = server::ServerApp::Start(server_options);
  if (!started.ok())
    return "cannot start kaito-server on " + store + ": " + started.status().ToString();
  std::unique_ptr<server::ServerApp> app = std::move(*started);
  if (before) before(*app);
  const absl::Duration phase = absl::Milliseconds(static_cast<int64_t>(options.seconds * 1000));
  WorkspaceStubs stubs =
      DialWorkspaces(absl::StrCat("127.0.0.1:", app->grpc_port()), options.channels);
  std::atomic<int64_t> created{0};
  Figures create = CreateLoop("create (durable, " + tag + ")", stubs, options.clients, phase,
                              &created, cpu.Mark());
  (*results)["create_" + tag] = cpu.With(create);
  AddStoreFigures(app->store(), &(*results)["create_" + tag]);
  (*results)["get_" + tag] = cpu.With(
      GetLoop("get (" + tag + ")", stubs, options.clients, phase, created.load(), cpu.Mark()));
  stubs.clear();
  app.reset();
  if (create.errors > 0) return absl::StrCat(create.errors, " creates on ", tag, " failed");
  return "";
}

}  // namespace

nlohmann::json RunStoreBench(const StoreBenchOptions& options) {
  nlohmann::json out;
  out["config"] = {{"clients", options.clients},
                   {"channels", options.channels},
                   {"seconds", options.seconds},
                   {"check_perf", options.check_perf}};
  const bool own_dir = options.data_dir.empty();
  const std::string dir = BenchDir(options.data_dir);
  const absl::Duration phase = absl::Milliseconds(static_cast<int64_t>(options.seconds * 1000));

  std::string endpoints = options.etcd;
  ChildProcess etcd;
  if (endpoints.empty()) {
    const int client = FreeLoopbackPort(), peer = FreeLoopbackPort();
    if (client == 0 || peer == 0) return {{"error", "no free loopback port"}};
    endpoints = absl::StrCat("127.0.0.1:", client);
    const std::string peer_url = absl::StrCat("http://127.0.0.1:", peer);
    std::filesystem::create_directories(dir + "/etcd");
    absl::Status st = etcd.Launch(
        {"/usr/bin/etcd", "--name", "bench", "--data-dir", dir + "/etcd/data",
         "--listen-client-urls", "http://" + endpoints, "--advertise-client-urls",
         "http://" + endpoints, "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
         peer_url, "--initial-cluster", "bench=" + peer_url, "--logger", "zap", "--log-outputs",
         dir + "/etcd/etcd.log"});
    if (!st.ok()) return {{"error", st.ToString()}};
  }
  out["config"]["etcd"] = endpoints;
  out["config"]["etcd_started_here"] = options.etcd.empty();
  auto channels = EtcdChannels(endpoints, options.channels);
  if (!WaitEtcd(channels[0], absl::Seconds(30))) {
    return {{"error", "etcd at " + endpoints + " does not answer"}};
  }
  nlohmann::json& results = out["results"];
  CpuMeter cpu(etcd.pid());

  // On etcd: first learn what one stored workspace weighs, then etcd's own put rate with
  // keys and values of that size while the server idles, then the server's phases.
  // A prefix of this run's own, so that a shared etcd's earlier runs do not collide.
  const std::string prefix =
      absl::StrCat("/kaito-bench/", getpid(), "-", absl::ToUnixSeconds(absl::Now()));
  out["config"]["etcd_prefix"] = prefix;
  std::string error = ServerPhases(
      options, dir + "/server-etcd", "etcd://" + endpoints, prefix, "etcd",
      [&](server::ServerApp& app) {
        WorkspaceStubs probe = DialWorkspaces(absl::StrCat("127.0.0.1:", app.grpc_port()), 1);
        grpc::ClientContext ctx;
        v1::CreateWorkspaceRequest req;
        *req.mutable_workspace() = MakeWorkspace("size-probe");
        v1::CreateWorkspaceResponse resp;
        (void)probe[0]->CreateWorkspace(&ctx, req, &resp);
        auto [key_size, value_size] = StoredSize(channels[0], prefix, "size-probe");
        if (value_size == 0) value_size = 512;
        out["config"]["stored_key_bytes"] = key_size;
        out["config"]["stored_value_bytes"] = value_size;
        results["etcd_put"] = cpu.With(
            RawPuts(channels, options.clients, phase, key_size, value_size, false, cpu.Mark()));
        results["etcd_txn"] = cpu.With(
            RawPuts(channels, options.clients, phase, key_size, value_size, true, cpu.Mark()));
      },
      cpu, &results);
  if (error.empty()) {
    error = ServerPhases(options, dir + "/server-sqlite", "sqlite", prefix, "sqlite", nullptr, cpu,
                         &results);
  }
  if (error.empty() && options.check_perf) {
    const std::string command =
        absl::StrCat("/usr/bin/etcdctl --endpoints ", endpoints,
                     " check perf --load s --prefix /bench-check-perf/ 2>&1");
    std::vector<std::string> lines;
    if (FILE* p = popen(command.c_str(), "r")) {
      char buf[4096];
      while (fgets(buf, sizeof(buf), p)) {
        std::string line(buf);
        // The progress bar redraws itself with carriage returns; keep the verdicts.
        for (absl::string_view part : absl::StrSplit(line, absl::ByAnyChar("\r\n"))) {
          if (absl::StartsWith(part, "PASS") || absl::StartsWith(part, "FAIL")) {
            lines.emplace_back(part);
          }
        }
      }
      results["etcdctl_check_perf"]["exit"] = pclose(p);
    }
    results["etcdctl_check_perf"]["verdicts"] = lines;
  }
  channels.clear();
  etcd.Stop();
  if (own_dir) std::filesystem::remove_all(dir);
  if (!error.empty()) {
    out["error"] = error;
    return out;
  }
  auto rate = [&](const char* key) { return results[key]["ops_per_second"].get<double>(); };
  const double put = rate("etcd_put");
  out["ratios"]["create_etcd_over_etcd_put"] = put > 0 ? rate("create_etcd") / put : 0;
  out["ratios"]["create_etcd_over_create_sqlite"] =
      rate("create_sqlite") > 0 ? rate("create_etcd") / rate("create_sqlite") : 0;
  out["ratios"]["get_etcd_over_get_sqlite"] =
      rate("get_sqlite") > 0 ? rate("get_etcd") / rate("get_sqlite") : 0;
  return out;
}

}  // namespace kaito::bench
