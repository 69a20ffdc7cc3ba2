// Several kaito-server replicas on one 3-member etcd, as processes on loopback, with
// kaito-provisioner (simulated cloud and agents) as its own process: the leader replica is
// killed with SIGKILL while 100 workspaces are being reconciled; the other replica must take
// the lease within its TTL + 1 s, and every workspace must converge with exactly one node
// claim, one machine and one workload each. Also: a replica cut off from etcd stops leading
// and acknowledging writes; a kaitoctl watch resumes on the other replica when its own dies;
// both replicas' caches agree with etcd after 10,000 mixed writes.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/provisioner.grpc.pb.h"
#include "kaito/v1/system.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/etcd.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

constexpr int kWorkspaces = 100;
constexpr absl::Duration kLeaseDuration = absl::Seconds(3);

// One replica's API, over its own address.
class Replica {
 public:
  Replica() = default;
  explicit Replica(const std::string& address)
      : channel_(grpc::CreateChannel(address, grpc::InsecureChannelCredentials())),
        workspaces_(v1::WorkspaceService::NewStub(channel_)),
        nodes_(v1::NodeService::NewStub(channel_)),
        system_(v1::SystemService::NewStub(channel_)),
        config_(v1::ConfigService::NewStub(channel_)) {}

  // This replica's view of who leads; empty when it does not answer.
  std::string Leader() {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    v1::VersionInfo info;
    if (!system_->GetVersion(&ctx, v1::GetVersionRequest(), &info).ok()) return "";
    return info.leader();
  }
  std::vector<v1::Workspace> Workspaces() {
    grpc::ClientContext ctx;
    v1::ListWorkspacesResponse resp;
    workspaces_->ListWorkspaces(&ctx, v1::ListWorkspacesRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }
  std::vector<v1::NodeClaim> Claims() {
    grpc::ClientContext ctx;
    v1::ListNodeClaimsResponse resp;
    nodes_->ListNodeClaims(&ctx, v1::ListRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }
  std::vector<v1::Workload> Workloads() {
    grpc::ClientContext ctx;
    v1::ListWorkloadsResponse resp;
    nodes_->ListWorkloads(&ctx, v1::ListRequest(), &resp);
    return {resp.items().begin(), resp.items().end()};
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> workspaces_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
  std::unique_ptr<v1::SystemService::Stub> system_;
  std::unique_ptr<v1::ConfigService::Stub> config_;

 public:
  v1::ConfigService::Stub* config() { return config_.get(); }
  // name -> resourceVersion of every ConfigMap in this replica's cache.
  std::map<std::string, std::string> ConfigMapVersions() {
    grpc::ClientContext ctx;
    v1::ListConfigMapsResponse resp;
    config_->ListConfigMaps(&ctx, v1::ListRequest(), &resp);
    std::map<std::string, std::string> versions;
    for (const auto& cm : resp.items()) {
      versions[cm.metadata().name()] = cm.metadata().resource_version();
    }
    return versions;
  }
};

int ReadyCount(const std::vector<v1::Workspace>& list) {
  int ready = 0;
  for (const auto& ws : list) ready += ws.status().state() == "Ready" ? 1 : 0;
  return ready;
}

class HaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto etcd = LocalEtcd::Start(dir_.File("etcd"), 3);
    ASSERT_TRUE(etcd.ok()) << etcd.status();
    etcd_ = *std::move(etcd);
    const std::string prov_port_file = dir_.File("prov.port");
    auto provisioner =
        Daemon::Start({BinDir() + "/kaito-provisioner", "--provider", "simulated", "--listen",
                       "127.0.0.1:0", "--port-file", prov_port_file, "--metrics-listen", "",
                       "--simulated-create-delay", "500ms", "--simulated-pull-delay", "50ms",
                       "--simulated-start-delay", "50ms", "--simulated-ready-delay", "100ms"},
                      dir_.File("provisioner.log"));
    ASSERT_TRUE(provisioner.ok()) << provisioner.status();
    provisioner_ = std::move(*provisioner);
    ASSERT_TRUE(WaitForPortFile(prov_port_file, &prov_port_, absl::Seconds(20)))
        << ReadFile(dir_.File("provisioner.log"));
    for (int i = 0; i < 2; ++i) {
      ports_[i] = FreeLoopbackPort();
      ASSERT_NE(ports_[i], 0);
    }
    // The agents dial either replica and fail over between them.
    advertise_ = absl::StrCat("ipv4:127.0.0.1:", ports_[0], ",127.0.0.1:", ports_[1]);
    for (int i = 0; i < 2; ++i) StartReplica(i);
  }
  void TearDown() override {
    if (HasFailure()) {
      for (int i = 0; i < 2; ++i) {
        std::cerr << "--- replica " << i << " log (tail) ---\n"
                  << Tail(ReadFile(dir_.File(absl::StrCat("replica-", i, ".log")))) << std::endl;
      }
    }
    for (auto& r : replicas_) r.Stop();
    provisioner_.Stop();
  }
  static std::string Tail(const std::string& s) {
    return s.size() > 6000 ? s.substr(s.size() - 6000) : s;
  }
  std::string Name(int i) { return absl::StrCat("replica-", i); }
  // The leader once both replicas name the same one (within 20 s); empty if they do not.
  std::string AgreedLeader() {
    std::string leader;
    const bool agreed = WaitFor(
        [&] {
          leader = clients_[0]->Leader();
          return !leader.empty() && clients_[1]->Leader() == leader;
        },
        absl::Seconds(20));
    return agreed ? leader : "";
  }
  // The etcd members replica `i` talks to: every member, unless a test says otherwise.
  virtual std::string StoreUrl(int) { return etcd_->store_url(); }
  std::string Address(int i) { return absl::StrCat("127.0.0.1:", ports_[i]); }

  void StartReplica(int i) {
    const std::string port_file = dir_.File(absl::StrCat("replica-", i, ".port"));
    auto daemon = Daemon::Start({BinDir() + "/kaito-server",
                                 "--listen",
                                 Address(i),
                                 "--metrics-listen",
                                 "",
                                 "--data-dir",
                                 dir_.File(Name(i)),
                                 "--port-file",
                                 port_file,
                                 "--store",
                                 StoreUrl(i),
                                 "--replica-name",
                                 Name(i),
                                 "--provisioner",
                                 absl::StrCat("127.0.0.1:", prov_port_),
                                 "--advertise-address",
                                 advertise_,
                                 "--leader-elect-lease-duration",
                                 absl::FormatDuration(kLeaseDuration),
                                 "--leader-elect-renew-deadline",
                                 "2s",
                                 "--leader-elect-retry-period",
                                 "200ms",
                                 "--claim-poll-interval",
                                 "100ms",
                                 "--node-lease-ttl",
                                 "5s",
                                 "--node-heartbeat-interval",
                                 "500ms",
                                 "--node-lost-grace",
                                 "10s"},
                                dir_.File(absl::StrCat("replica-", i, ".log")));
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    replicas_[i] = std::move(*daemon);
    int port = 0;
    ASSERT_TRUE(WaitForPortFile(port_file, &port, absl::Seconds(30)))
        << ReadFile(dir_.File(absl::StrCat("replica-", i, ".log")));
    clients_[i] = std::make_unique<Replica>(Address(i));
  }

  std::vector<v1::ProvisionedNode> Machines() {
    auto prov = v1::ProvisionerService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", prov_port_), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::ListProvisionedNodesResponse machines;
    EXPECT_TRUE(prov->ListNodes(&ctx, v1::ListProvisionedNodesRequest(), &machines).ok());
    return {machines.nodes().begin(), machines.nodes().end()};
  }

  TempDir dir_;
  std::unique_ptr<LocalEtcd> etcd_;
  Daemon provisioner_;
  int prov_port_ = 0;
  int ports_[2] = {0, 0};
  std::string advertise_;
  Daemon replicas_[2];
  std::unique_ptr<Replica> clients_[2];
};

TEST_F(HaTest, KilledLeaderIsReplacedWithinTheLeaseAndEveryWorkspaceConverges) {
  // One leader, seen alike by both replicas; the other serves the API too.
  const std::string leader = AgreedLeader();
  ASSERT_FALSE(leader.empty());
  const int dead = leader == Name(0) ? 0 : 1;
  const int survivor = 1 - dead;
  ASSERT_EQ(leader, Name(dead));

  // 100 workspaces, written through the replica that does not lead.
  std::string manifest;
  for (int i = 0; i < kWorkspaces; ++i) {
    absl::StrAppend(&manifest, "---\napiVersion: kaito.sh/v1beta1\nkind: Workspace\n",
                    "metadata:\n  name: ws-", i, "\nresource:\n",
                    "  instanceType: Standard_NC24ads_A100_v4\n  labelSelector:\n",
                    "    matchLabels:\n      apps: ws-", i, "\n",
                    "inference:\n  preset:\n    name: phi-3-mini-128k-instruct\n");
  }
  const std::string path = dir_.File("workspaces.yaml");
  std::ofstream(path) << manifest;
  RunResult applied =
      RunCommand({BinDir() + "/kaitoctl", "--server", Address(survivor), "apply", "-f", path});
  ASSERT_EQ(applied.exit_code, 0) << applied.err;

  // Kill the leader mid-reconcile: some claims made, not every workspace Ready.
  ASSERT_TRUE(
      WaitFor([&] { return clients_[survivor]->Claims().size() >= 20; }, absl::Seconds(30)));
  EXPECT_LT(ReadyCount(clients_[survivor]->Workspaces()), kWorkspaces);
  const auto killed_at = std::chrono::steady_clock::now();
  replicas_[dead].Kill();
  ASSERT_TRUE(
      WaitFor([&] { return clients_[survivor]->Leader() == Name(survivor); }, absl::Seconds(15)));
  const double takeover_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cout << "takeover after SIGKILL of the leader: " << takeover_s << " s" << std::endl;
  EXPECT_LE(takeover_s, absl::ToDoubleSeconds(kLeaseDuration) + 1.0);

  ASSERT_TRUE(WaitFor([&] { return ReadyCount(clients_[survivor]->Workspaces()) == kWorkspaces; },
                      absl::Seconds(120)))
      << ReadyCount(clients_[survivor]->Workspaces()) << " of " << kWorkspaces << " Ready";

  // No duplicates: one claim, one machine, one workload per workspace.
  std::map<std::string, int> claims_per_workspace;
  for (const auto& c : clients_[survivor]->Claims()) {
    ++claims_per_workspace[c.metadata().labels().at("kaito.sh/workspace")];
  }
  EXPECT_EQ(claims_per_workspace.size(), static_cast<size_t>(kWorkspaces));
  for (const auto& [ws, n] : claims_per_workspace) EXPECT_EQ(n, 1) << ws;
  EXPECT_EQ(Machines().size(), static_cast<size_t>(kWorkspaces)) << "no duplicate machines";
  std::map<std::string, int> workloads_per_workspace;
  for (const auto& w : clients_[survivor]->Workloads()) {
    ++workloads_per_workspace[w.metadata().labels().at("kaito.sh/workspace")];
  }
  EXPECT_EQ(workloads_per_workspace.size(), static_cast<size_t>(kWorkspaces));
  for (const auto& [ws, n] : workloads_per_workspace) EXPECT_EQ(n, 1) << ws;

  // The killed replica comes back as a follower; the leader keeps its lease.
  StartReplica(dead);
  ASSERT_TRUE(
      WaitFor([&] { return clients_[dead]->Leader() == Name(survivor); }, absl::Seconds(20)));
  EXPECT_EQ(clients_[survivor]->Leader(), Name(survivor));
}

// `kaitoctl get -w` with both replicas in --server watches through the first; when that
// replica dies the watch resumes on the other after the last resourceVersion it printed:
// later changes arrive, nothing is printed twice (no relist, no replay).
TEST_F(HaTest, KaitoctlWatchResumesOnAnotherReplicaWhenItsReplicaDies) {
  ASSERT_FALSE(AgreedLeader().empty());
  const std::string log = dir_.File("watch.log");
  auto watch = Daemon::Start(
      {BinDir() + "/kaitoctl", "--server", advertise_, "get", "workspaces", "-w", "--watch-only",
       "-o", "jsonpath={.metadata.name}={.metadata.resourceVersion}{\"\\n\"}"},
      log);
  ASSERT_TRUE(watch.ok()) << watch.status();
  auto apply = [&](const std::string& name) {
    const std::string path = dir_.File(name + ".yaml");
    std::ofstream(path) << "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: "
                        << name
                        << "\nresource:\n  instanceType: Standard_NC24ads_A100_v4\n"
                           "  labelSelector:\n    matchLabels:\n      apps: "
                        << name << "\ninference:\n  preset:\n    name: phi-3-mini-128k-instruct\n";
    return RunCommand({BinDir() + "/kaitoctl", "--server", Address(1), "apply", "-f", path})
        .exit_code;
  };
  // The watch is open before the first create (a watch-only from now would miss it otherwise).
  ASSERT_TRUE(WaitFor(
      [&] { return apply("ws-a") == 0 && ReadFile(log).find("ws-a=") != std::string::npos; },
      absl::Seconds(20)))
      << ReadFile(log);
  replicas_[0].Kill();
  ASSERT_EQ(apply("ws-b"), 0);
  ASSERT_TRUE(
      WaitFor([&] { return ReadFile(log).find("ws-b=") != std::string::npos; }, absl::Seconds(30)))
      << ReadFile(log);
  watch->Stop();
  const std::string out = ReadFile(log);
  EXPECT_NE(out.find("resuming after resourceVersion"), std::string::npos) << out;
  // Every printed change is newer than the one before it.
  std::regex entry("(ws-[a-z])=([0-9]+)");
  int64_t previous = 0;
  int entries = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), entry); it != std::sregex_iterator();
       ++it) {
    const int64_t rv = std::stoll((*it)[2].str());
    EXPECT_GT(rv, previous) << "printed again or out of order: " << (*it)[0].str() << "\n" << out;
    previous = rv;
    ++entries;
  }
  EXPECT_GE(entries, 2);
}

// Replica 0 reaches only etcd member 0, replica 1 only members 1 and 2: stopping member 0
// cuts replica 0 off from etcd while the cluster keeps its quorum.
class HaPartitionTest : public HaTest {
 protected:
  std::string StoreUrl(int i) override {
    return i == 0 ? "etcd://" + etcd_->endpoint(0)
                  : absl::StrCat("etcd://", etcd_->endpoint(1), ",", etcd_->endpoint(2));
  }
  // Creates ConfigMap `name` through replica `i`, waiting up to `deadline` for the answer.
  grpc::Status CreateConfigMap(int i, const std::string& name, absl::Duration deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
    v1::WriteConfigMapRequest req;
    req.mutable_config_map()->mutable_metadata()->set_name(name);
    (*req.mutable_config_map()->mutable_data())["k"] = "v";
    v1::ConfigMap made;
    return clients_[i]->config()->CreateConfigMap(&ctx, req, &made);
  }
  grpc::StatusCode GetConfigMap(int i, const std::string& name) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ObjectKey req;
    req.set_name(name);
    v1::ConfigMap got;
    return clients_[i]->config()->GetConfigMap(&ctx, req, &got).error_code();
  }
};

TEST_F(HaPartitionTest, AReplicaCutOffFromEtcdStopsLeadingAndStopsAcknowledgingWrites) {
  // Replica 0 leads (if replica 1 won the start, a clean stop hands the lease over).
  ASSERT_FALSE(AgreedLeader().empty());
  if (clients_[0]->Leader() != Name(0)) {
    replicas_[1].Stop();
    ASSERT_TRUE(WaitFor([&] { return clients_[0]->Leader() == Name(0); }, absl::Seconds(10)));
    StartReplica(1);
  }
  ASSERT_TRUE(WaitFor([&] { return clients_[1]->Leader() == Name(0); }, absl::Seconds(20)));
  ASSERT_TRUE(CreateConfigMap(0, "before", absl::Seconds(10)).ok());

  // Cut replica 0 off: its only member goes; the other two keep the quorum.
  const auto cut_at = std::chrono::steady_clock::now();
  etcd_->Kill(0);
  auto since_cut = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - cut_at).count();
  };
  // It stops leading within its renew deadline (2 s here, + one retry period)...
  ASSERT_TRUE(WaitFor([&] { return clients_[0]->Leader() != Name(0); }, absl::Seconds(10)));
  const double stepped_down_s = since_cut();
  // ...and the replica that still reaches etcd takes the lease once it lapses.
  ASSERT_TRUE(WaitFor([&] { return clients_[1]->Leader() == Name(1); }, absl::Seconds(15)));
  const double taken_over_s = since_cut();
  std::cout << "cut off from etcd: stopped leading after " << stepped_down_s
            << " s; the other replica leads after " << taken_over_s << " s" << std::endl;
  EXPECT_LE(stepped_down_s, 2.0 + 1.0);
  // The takeover takes the lease, and more when the lost member was etcd's raft leader: the
  // others elect one first, and a new etcd leader gives every lease its whole TTL again
  // (3.4-6.1 s measured, the longer on a loaded machine); the wait above bounds it.
  EXPECT_GE(taken_over_s, absl::ToDoubleSeconds(kLeaseDuration) - 1.0);
  EXPECT_GE(taken_over_s, stepped_down_s) << "two leaders at once";

  // A write through the cut-off replica is never acknowledged, and nothing is written.
  const grpc::Status during = CreateConfigMap(0, "during", absl::Seconds(30));
  EXPECT_FALSE(during.ok());
  EXPECT_EQ(during.error_code(), grpc::StatusCode::UNAVAILABLE) << during.error_message();
  // The other replica serves reads and writes all along.
  EXPECT_TRUE(CreateConfigMap(1, "after", absl::Seconds(10)).ok());
  EXPECT_EQ(GetConfigMap(1, "before"), grpc::StatusCode::OK);
  EXPECT_EQ(GetConfigMap(1, "during"), grpc::StatusCode::NOT_FOUND);

  // With its member back, replica 0 takes writes again, as a follower.
  ASSERT_TRUE(etcd_->Restart(0).ok());
  ASSERT_TRUE(WaitFor([&] { return CreateConfigMap(0, "back", absl::Seconds(5)).ok(); },
                      absl::Seconds(30)));
  ASSERT_TRUE(
      WaitFor([&] { return GetConfigMap(0, "after") == grpc::StatusCode::OK; }, absl::Seconds(10)));
  EXPECT_EQ(GetConfigMap(0, "during"), grpc::StatusCode::NOT_FOUND);
  // It learns who leads at its next look at the election key.
  EXPECT_TRUE(WaitFor([&] { return clients_[0]->Leader() == Name(1); }, absl::Seconds(20)))
      << clients_[0]->Leader();
  EXPECT_EQ(clients_[1]->Leader(), Name(1));
}

// Both replicas take writes (creates, updates and deletes of ConfigMaps, 10,000 in all, from
// 16 clients alternating between them); afterwards both caches hold exactly what etcd holds,
// revision for revision. A conflicting update sent to both replicas with the same
// resourceVersion wins on exactly one.
TEST_F(HaTest, TwoReplicasCachesAgreeWithEtcdAfterTenThousandMixedWrites) {
  constexpr int kClients = 16;
  constexpr int kOpsPerClient = 10000 / kClients;
  std::atomic<int> ok{0}, failed{0};
  absl::Mutex failures_mu;
  std::map<int, int> failures;  // By gRPC code; guarded by failures_mu.
  std::string first_failure;
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      std::mt19937 random(t);
      std::map<std::string, std::string> live;  // Name -> resourceVersion; this client's own.
      int next = 0;
      for (int i = 0; i < kOpsPerClient; ++i) {
        v1::ConfigService::Stub* api = clients_[(t + i) % 2]->config();
        const int dice = static_cast<int>(random() % 10);
        grpc::ClientContext ctx;
        grpc::Status s;
        if (live.empty() || dice < 5) {
          v1::WriteConfigMapRequest req;
          const std::string name = absl::StrCat("cm-", t, "-", next++);
          req.mutable_config_map()->mutable_metadata()->set_name(name);
          (*req.mutable_config_map()->mutable_data())["n"] = std::to_string(i);
          v1::ConfigMap made;
          s = api->CreateConfigMap(&ctx, req, &made);
          if (s.ok()) live[name] = made.metadata().resource_version();
        } else {
          auto it = live.begin();
          std::advance(it, random() % live.size());
          if (dice < 8) {
            v1::WriteConfigMapRequest req;
            req.mutable_config_map()->mutable_metadata()->set_name(it->first);
            req.mutable_config_map()->mutable_metadata()->set_resource_version(it->second);
            (*req.mutable_config_map()->mutable_data())["n"] = std::to_string(i);
            v1::ConfigMap updated;
            s = api->UpdateConfigMap(&ctx, req, &updated);
            if (s.ok()) it->second = updated.metadata().resource_version();
          } else {
            v1::DeleteRequest req;
            req.set_name(it->first);
            req.set_resource_version(it->second);
            v1::DeleteResponse resp;
            s = api->DeleteConfigMap(&ctx, req, &resp);
            if (s.ok()) live.erase(it);
          }
        }
        if (s.ok()) {
          ++ok;
        } else {
          ++failed;
          absl::MutexLock lock(&failures_mu);
          failures[s.error_code()]++;
          if (first_failure.empty()) first_failure = s.error_message();
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  {
    absl::MutexLock lock(&failures_mu);
    std::string codes;
    for (const auto& [code, n] : failures) absl::StrAppend(&codes, " code ", code, ": ", n);
    EXPECT_EQ(ok.load(), 10000) << failed.load() << " failed:" << codes << "; " << first_failure;
  }

  // Optimistic concurrency across replicas: the same resourceVersion wins once.
  {
    v1::WriteConfigMapRequest req;
    req.mutable_config_map()->mutable_metadata()->set_name("contended");
    grpc::ClientContext ctx;
    v1::ConfigMap cm;
    ASSERT_TRUE(clients_[0]->config()->CreateConfigMap(&ctx, req, &cm).ok());
    for (int round = 0; round < 50; ++round) {
      std::string rv = cm.metadata().resource_version();
      int wins = 0, aborted = 0;
      for (int k = 0; k < 2; ++k) {
        v1::WriteConfigMapRequest update;
        update.mutable_config_map()->mutable_metadata()->set_name("contended");
        update.mutable_config_map()->mutable_metadata()->set_resource_version(rv);
        (*update.mutable_config_map()->mutable_data())["by"] = std::to_string(round * 2 + k);
        grpc::ClientContext uctx;
        v1::ConfigMap out;
        grpc::Status s = clients_[(round + k) % 2]->config()->UpdateConfigMap(&uctx, update, &out);
        if (s.ok()) {
          ++wins;
          cm = out;
        } else if (s.error_code() == grpc::StatusCode::ABORTED) {
          ++aborted;
        }
      }
      EXPECT_EQ(wins, 1) << "round " << round;
      EXPECT_EQ(aborted, 1) << "round " << round;
    }
  }

  // etcd's own view, from etcdctl: name -> resourceVersion (etcd's mod_revision - 1).
  auto from_etcd = [&]() -> std::map<std::string, std::string> {
    RunResult r = RunCommand({"/usr/bin/etcdctl", "--endpoints", etcd_->endpoint(1), "get",
                              "/kaito/configmaps/", "--prefix", "-w", "json"},
                             "", {"ETCDCTL_API=3"});
    std::map<std::string, std::string> versions;
    if (r.exit_code != 0) return versions;
    auto json = nlohmann::json::parse(r.out, nullptr, false);
    if (json.is_discarded() || !json.contains("kvs")) return versions;
    for (const auto& kv : json["kvs"]) {
      std::string key;
      absl::Base64Unescape(kv["key"].get<std::string>(), &key);
      versions[key.substr(key.rfind('/') + 1)] =
          std::to_string(kv["mod_revision"].get<int64_t>() - 1);
    }
    return versions;
  };
  std::map<std::string, std::string> etcd, a, b;
  EXPECT_TRUE(WaitFor(
      [&] {
        etcd = from_etcd();
        a = clients_[0]->ConfigMapVersions();
        b = clients_[1]->ConfigMapVersions();
        return !etcd.empty() && a == etcd && b == etcd;
      },
      absl::Seconds(30)));
  EXPECT_GT(etcd.size(), 1000u);
  EXPECT_EQ(a, etcd);
  EXPECT_EQ(b, etcd);
}

}  // namespace
}  // namespace kaito::testing
