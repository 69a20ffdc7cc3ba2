// Several kaito-server replicas on one 3-member etcd, as processes on loopback, with
// kaito-provisioner (simulated cloud and agents) as its own process: the leader replica is
// killed with SIGKILL while 100 workspaces are being reconciled; the other replica must take
// the lease within its TTL + 1 s, and every workspace must converge with exactly one node
// claim, one machine and one workload each.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "kaito/v1/agent.grpc.pb.h"
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
        system_(v1::SystemService::NewStub(channel_)) {}

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
                                 etcd_->store_url(),
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
  std::string leader;
  ASSERT_TRUE(WaitFor(
      [&] {
        leader = clients_[0]->Leader();
        return !leader.empty() && clients_[1]->Leader() == leader;
      },
      absl::Seconds(20)));
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

}  // namespace
}  // namespace kaito::testing
