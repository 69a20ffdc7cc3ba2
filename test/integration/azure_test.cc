// kaito-provisioner --provider azure against kaito-fake-arm, both as processes on
// loopback: every request the provisioner makes is in the fake's journal, so each test
// asserts on the exact ARM traffic (bodies, poll spacing, retries, which pools were
// deleted) as well as on the claim's status over gRPC. See azure-arm.md §6.6.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/provisioner.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito {
namespace {

using nlohmann::json;
using testing::BinDir;
using testing::Daemon;
using testing::ReadFile;
using testing::RunCommand;
using testing::WaitFor;
using testing::WaitForPortFile;

constexpr char kVmSize[] = "Standard_NC24ads_A100_v4";

class AzureProvisionerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string port_file = dir_.File("arm.port");
    auto arm = Daemon::Start({BinDir() + "/kaito-fake-arm", "--listen", "127.0.0.1:0",
                              "--port-file", port_file, "--prov-delay", "1s", "--del-delay",
                              "500ms", "--upd-delay", "500ms", "--poll-retry-after", "1"},
                             dir_.File("arm.log"));
    ASSERT_TRUE(arm.ok()) << arm.status();
    arm_ = std::move(*arm);
    ASSERT_TRUE(WaitForPortFile(port_file, &arm_port_, absl::Seconds(20)))
        << ReadFile(dir_.File("arm.log"));
    fake_ = std::make_unique<httplib::Client>("127.0.0.1", arm_port_);
    fake_->set_read_timeout(30, 0);
  }

  void TearDown() override {
    if (HasFailure()) {
      std::cerr << "--- provisioner log ---\n" << ReadFile(dir_.File("provisioner.log"));
    }
  }

  int ProvisionerPort() const { return provisioner_port_; }
  std::string ArmUrl() const { return "http://127.0.0.1:" + std::to_string(arm_port_); }

  // Starts (or restarts) the provisioner against the fake with a client secret.
  void StartProvisioner(std::vector<std::string> extra = {}) {
    const std::string port_file = dir_.File("prov.port");
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "AZURE_CLIENT_ID=fake-client",
                                     "AZURE_CLIENT_SECRET=fake-secret",
                                     "AZURE_TENANT_ID=fake-tenant",
                                     "AZURE_AUTHORITY_HOST=" + ArmUrl(),
                                     BinDir() + "/kaito-provisioner",
                                     "--provider",
                                     "azure",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--port-file",
                                     port_file,
                                     "--metrics-listen",
                                     "127.0.0.1:0",
                                     "--log-level",
                                     "debug",
                                     "--subscription-id",
                                     "fake-sub",
                                     "--resource-group",
                                     "fake-rg",
                                     "--cluster-name",
                                     "fake-aks",
                                     "--location",
                                     "eastus",
                                     "--arm-endpoint",
                                     ArmUrl(),
                                     "--azure-poll-interval",
                                     "1s",
                                     "--azure-retry-delay",
                                     "200ms"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto daemon = Daemon::Start(argv, dir_.File("provisioner.log"));
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    provisioner_ = std::move(*daemon);
    int port = 0;
    ASSERT_TRUE(WaitForPortFile(port_file, &port, absl::Seconds(20)))
        << ReadFile(dir_.File("provisioner.log"));
    provisioner_port_ = port;
    stub_ = v1::ProvisionerService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }

  json Fake(const std::string& method, const std::string& path, const json& body = nullptr) {
    httplib::Result r =
        method == "GET"      ? fake_->Get(path.c_str())
        : method == "DELETE" ? fake_->Delete(path.c_str())
        : method == "PUT"
            ? fake_->Put(path.c_str(), body.dump(), "application/json")
            : fake_->Post(path.c_str(), body.is_null() ? "{}" : body.dump(), "application/json");
    EXPECT_TRUE(r) << method << " " << path;
    if (!r) return nullptr;
    EXPECT_LT(r->status, 300) << method << " " << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }

  // The journal entries of `op` (and `pool`, when given).
  std::vector<json> Journal(const std::string& op, const std::string& pool = "") {
    std::string path = "/_fake/requests?op=" + op;
    if (!pool.empty()) path += "&pool=" + pool;
    json entries = Fake("GET", path);
    std::vector<json> out;
    if (entries.is_array()) {
      for (auto& e : entries) out.push_back(e);
    }
    return out;
  }
  int Count(const std::string& op, const std::string& pool, int status = 0) {
    int n = 0;
    for (const json& e : Journal(op, pool)) {
      if (status == 0 || e.value("status", 0) == status) ++n;
    }
    return n;
  }

  v1::ProvisionedNode Create(const std::string& name, const std::string& vm_size = kVmSize) {
    v1::CreateNodeRequest request;
    request.set_claim_name(name);
    request.mutable_spec()->set_instance_type(vm_size);
    request.mutable_spec()->set_disk_size_gib(256);
    (*request.mutable_spec()->mutable_labels())["kaito.sh/workspace"] = "ws1";
    (*request.mutable_spec()->mutable_labels())["kaito.sh/workspacenamespace"] = "default";
    v1::Taint* taint = request.mutable_spec()->add_taints();
    taint->set_key("sku");
    taint->set_value("gpu");
    taint->set_effect("NoSchedule");
    grpc::ClientContext ctx;
    v1::ProvisionedNode node;
    grpc::Status s = stub_->CreateNode(&ctx, request, &node);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return node;
  }
  std::optional<v1::ProvisionedNode> Get(const std::string& name) {
    v1::GetNodeRequest request;
    request.set_claim_name(name);
    grpc::ClientContext ctx;
    v1::ProvisionedNode node;
    if (!stub_->GetNode(&ctx, request, &node).ok()) return std::nullopt;
    return node;
  }
  // Waits until the claim leaves Creating; returns it as it is then.
  v1::ProvisionedNode Settle(const std::string& name, absl::Duration deadline = absl::Seconds(30)) {
    v1::ProvisionedNode last;
    WaitFor(
        [&] {
          auto node = Get(name);
          if (node) last = *node;
          return node && node->phase() != "Creating";
        },
        deadline);
    return last;
  }
  bool Delete(const std::string& name) {
    v1::DeleteNodeRequest request;
    request.set_claim_name(name);
    grpc::ClientContext ctx;
    v1::DeleteNodeResponse response;
    grpc::Status s = stub_->DeleteNode(&ctx, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.gone();
  }
  // Deletes until the provider says nothing is left.
  bool DeleteUntilGone(const std::string& name, absl::Duration deadline = absl::Seconds(20)) {
    return WaitFor([&] { return Delete(name); }, deadline);
  }
  std::set<std::string> PoolsInFake() {
    std::set<std::string> names;
    json state = Fake("GET", "/_fake/state");
    for (const json& pool : state.value("pools", json::array()))
      names.insert(pool.value("name", ""));
    return names;
  }

  // Starts kaito-server on the provisioner; returns its address.
  std::string StartServer(std::vector<std::string> extra = {}) {
    const std::string port_file = dir_.File("server.port");
    std::vector<std::string> argv = {BinDir() + "/kaito-server",
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--metrics-listen",
                                     "",
                                     "--data-dir",
                                     dir_.path(),
                                     "--port-file",
                                     port_file,
                                     "--provisioner",
                                     "127.0.0.1:" + std::to_string(ProvisionerPort()),
                                     "--claim-poll-interval",
                                     "200ms",
                                     "--node-lease-ttl",
                                     "3s",
                                     "--node-heartbeat-interval",
                                     "500ms"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto daemon = Daemon::Start(argv, dir_.File("server.log"));
    EXPECT_TRUE(daemon.ok()) << daemon.status();
    if (!daemon.ok()) return "";
    server_ = std::move(*daemon);
    int port = 0;
    EXPECT_TRUE(WaitForPortFile(port_file, &port, absl::Seconds(20)))
        << ReadFile(dir_.File("server.log"));
    const std::string address = "127.0.0.1:" + std::to_string(port);
    auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
    nodes_ = v1::NodeService::NewStub(channel);
    workspaces_ = v1::WorkspaceService::NewStub(channel);
    return address;
  }

  // kaitoctl apply of a manifest.
  void Apply(const std::string& address, const std::string& manifest) {
    const std::string path = dir_.File("ws.yaml");
    std::ofstream(path) << manifest;
    testing::RunResult applied =
        RunCommand({BinDir() + "/kaitoctl", "--server", address, "apply", "-f", path});
    ASSERT_EQ(applied.exit_code, 0) << applied.err;
  }

  // Waits for a node claim that `match` accepts; returns it (empty if none came).
  v1::NodeClaim WaitForClaim(const std::function<bool(const v1::NodeClaim&)>& match,
                             absl::Duration deadline = absl::Seconds(40)) {
    v1::NodeClaim found;
    EXPECT_TRUE(WaitFor(
        [&] {
          grpc::ClientContext ctx;
          v1::ListNodeClaimsResponse resp;
          if (!nodes_->ListNodeClaims(&ctx, v1::ListRequest(), &resp).ok()) return false;
          for (const auto& c : resp.items()) {
            if (match(c)) {
              found = c;
              return true;
            }
          }
          return false;
        },
        deadline))
        << ReadFile(dir_.File("server.log"));
    return found;
  }

  v1::Workspace WaitForWorkspace(const std::string& name, const std::string& state,
                                 absl::Duration deadline = absl::Seconds(40)) {
    v1::Workspace ws;
    EXPECT_TRUE(WaitFor(
        [&] {
          grpc::ClientContext ctx;
          v1::GetWorkspaceRequest req;
          req.set_name(name);
          return workspaces_->GetWorkspace(&ctx, req, &ws).ok() && ws.status().state() == state;
        },
        deadline))
        << ws.status().DebugString() << ReadFile(dir_.File("server.log"));
    return ws;
  }

  // The agent of a claim's machine (what its VM would run): simulated containers, `gpus`
  // fake GPUs (a --fake-gpus spec; empty: none).
  absl::StatusOr<Daemon> StartAgent(const std::string& address, const v1::NodeClaim& claim,
                                    const std::string& gpus, const std::string& log) {
    std::string labels;
    for (const auto& [k, v] : claim.spec().labels()) {
      labels += (labels.empty() ? "" : ",") + k + "=" + v;
    }
    labels += ",kaito.sh/nodeclaim=" + claim.metadata().name();
    return Daemon::Start({BinDir() + "/kaito-agent",
                          "--server",
                          address,
                          "--node-name",
                          claim.status().node_name(),
                          "--labels",
                          labels,
                          "--instance-type",
                          claim.spec().instance_type(),
                          "--provider-id",
                          claim.status().provider_id(),
                          "--runtime",
                          "simulated",
                          "--gpu-probe",
                          "fake",
                          "--fake-gpus",
                          gpus,
                          "--metrics-listen",
                          "",
                          "--simulated-pull-delay",
                          "50ms",
                          "--simulated-start-delay",
                          "50ms",
                          "--simulated-ready-delay",
                          "100ms"},
                         dir_.File(log));
  }

  testing::TempDir dir_;
  Daemon arm_, provisioner_, server_;
  std::unique_ptr<v1::NodeService::Stub> nodes_;
  std::unique_ptr<v1::WorkspaceService::Stub> workspaces_;
  int arm_port_ = 0, provisioner_port_ = 0;
  std::unique_ptr<httplib::Client> fake_;
  std::unique_ptr<v1::ProvisionerService::Stub> stub_;
};

// §6.6 (1) and (7): PUT, polls spaced by Retry-After, final GET, the VM's name and id;
// then DELETE and its Location polls until the pool is gone.
TEST_F(AzureProvisionerTest, CreatesOnePoolPerClaimAndDeletesIt) {
  StartProvisioner();
  v1::ProvisionedNode first = Create("wsa00000001");
  EXPECT_EQ(first.phase(), "Creating");
  v1::ProvisionedNode node = Settle("wsa00000001");
  ASSERT_EQ(node.phase(), "Running") << node.DebugString();
  EXPECT_TRUE(std::regex_match(node.node_name(), std::regex("aks-wsa00000001-[0-9]{8}-vmss000000")))
      << node.node_name();
  EXPECT_TRUE(
      absl::StartsWith(node.provider_id(), "azure:///subscriptions/fake-sub/resourceGroups/"))
      << node.provider_id();
  EXPECT_TRUE(absl::StrContains(node.provider_id(), "/virtualMachineScaleSets/aks-wsa00000001-"));

  // The PUT: exactly one, with the body Kaito's gpu-provisioner sends plus our ownership.
  std::vector<json> puts = Journal("pool.put", "wsa00000001");
  ASSERT_EQ(puts.size(), 1u);
  EXPECT_EQ(puts[0]["status"], 201);
  EXPECT_TRUE(absl::StrContains(puts[0]["query"].get<std::string>(), "api-version=2024-01-01"));
  const json body = json::parse(puts[0]["body"].get<std::string>());
  const json& p = body["properties"];
  EXPECT_EQ(p["count"], 1);
  EXPECT_EQ(p["vmSize"], kVmSize);
  EXPECT_EQ(p["type"], "VirtualMachineScaleSets");
  EXPECT_EQ(p["osType"], "Linux");
  EXPECT_EQ(p["osSKU"], "Ubuntu");
  EXPECT_EQ(p["osDiskSizeGB"], 256);
  EXPECT_EQ(p["nodeTaints"], json::array({"sku=gpu:NoSchedule"}));
  EXPECT_EQ(p["nodeLabels"]["kaito.sh/workspace"], "ws1");
  EXPECT_EQ(p["nodeLabels"]["kaito.sh/nodeclaim"], "wsa00000001");
  EXPECT_EQ(p["nodeLabels"]["karpenter.sh/nodepool"], "kaito");
  EXPECT_EQ(p["tags"]["kaito-managed-by"], "kaito-provisioner");
  EXPECT_TRUE(puts[0]["headers"].contains("x-ms-client-request-id"));
  EXPECT_TRUE(absl::StartsWith(puts[0]["headers"]["authorization"].get<std::string>(), "Bearer "));

  // Polls of the operation: spaced by the Retry-After of 1 s (never sooner).
  std::vector<json> polls = Journal("op.poll", "wsa00000001");
  ASSERT_GE(polls.size(), 1u);
  int64_t previous = puts[0]["t_ms"];
  for (const json& poll : polls) {
    EXPECT_GE(poll["t_ms"].get<int64_t>() - previous, 950) << poll.dump();
    previous = poll["t_ms"];
  }
  // The final GET of the pool after the operation succeeded.
  EXPECT_GE(Count("pool.get", "wsa00000001", 200), 1);

  EXPECT_FALSE(Delete("wsa00000001")) << "the delete takes a while";
  EXPECT_TRUE(DeleteUntilGone("wsa00000001"));
  EXPECT_EQ(Count("pool.delete", "wsa00000001", 202), 1);
  EXPECT_FALSE(PoolsInFake().contains("wsa00000001"));
  EXPECT_FALSE(Get("wsa00000001").has_value()) << "a deleted claim is forgotten";
}

// §6.6 (2): quota refused at once (sync) or by the operation (async): the claim fails with
// QuotaExceeded and the ARM text, is not retried by the provider, and a Failed pool is deleted.
TEST_F(AzureProvisionerTest, QuotaFailuresReachTheClaimAndLeaveNoPool) {
  Fake("PUT", "/_fake/config",
       {{"quotas", {{"standardNCADSA100v4Family", 0}}}, {"quota_mode", "sync"}});
  // ARM's own refusals (the provisioner's check before create is the next test).
  StartProvisioner({"--azure-quota-check", "false"});
  Create("wsq00000001");
  v1::ProvisionedNode sync = Settle("wsq00000001");
  EXPECT_EQ(sync.phase(), "Failed");
  EXPECT_EQ(sync.error_code(), "QuotaExceeded");
  EXPECT_FALSE(sync.retryable());
  EXPECT_TRUE(absl::StrContains(sync.message(), "standardNCADSA100v4Family Cores quota"))
      << sync.message();
  EXPECT_EQ(Journal("pool.put", "wsq00000001").size(), 1u) << "a 409 is not retried";

  Fake("PUT", "/_fake/config", {{"quota_mode", "async"}});
  Create("wsq00000002");
  v1::ProvisionedNode async = Settle("wsq00000002");
  EXPECT_EQ(async.phase(), "Failed");
  EXPECT_EQ(async.error_code(), "QuotaExceeded");
  EXPECT_TRUE(WaitFor([&] { return !PoolsInFake().contains("wsq00000002"); }, absl::Seconds(20)))
      << "the Failed pool is deleted";
  EXPECT_GE(Count("pool.delete", "wsq00000002"), 1);
}

// The quota check before create: the compute usages say the family has room for two
// A100 nodes; the third create is refused with QuotaExceeded before any PUT, counting the
// creates in flight that the usage snapshot does not show yet.
TEST_F(AzureProvisionerTest, QuotaCheckRefusesBeforeAnyPut) {
  Fake("PUT", "/_fake/config", {{"quotas", {{"standardNCADSA100v4Family", 48}}}});
  StartProvisioner();
  Create("wsc00000001");
  Create("wsc00000002");
  Create("wsc00000003");
  for (const char* name : {"wsc00000001", "wsc00000002", "wsc00000003"}) Settle(name);
  int running = 0, refused = 0;
  for (const char* name : {"wsc00000001", "wsc00000002", "wsc00000003"}) {
    v1::ProvisionedNode node = *Get(name);
    if (node.phase() == "Running") ++running;
    if (node.phase() == "Failed") {
      ++refused;
      EXPECT_EQ(node.error_code(), "QuotaExceeded");
      EXPECT_FALSE(node.retryable());
      EXPECT_TRUE(absl::StrContains(node.message(), "quota check before create")) << node.message();
      EXPECT_TRUE(absl::StrContains(node.message(), "standardNCADSA100v4Family")) << node.message();
      EXPECT_TRUE(Journal("pool.put", name).empty()) << "refused before any PUT";
    }
  }
  EXPECT_EQ(running, 2);
  EXPECT_EQ(refused, 1);
  EXPECT_GE(Journal("usages").size(), 1u);
  EXPECT_LE(Journal("usages").size(), 2u) << "the usages are cached, not read per claim";
}

// §6.6 (3): throttling with each Retry-After form: every request throttled is retried no
// sooner than asked, and the claim converges.
TEST_F(AzureProvisionerTest, ThrottlingIsHonouredInEachRetryAfterForm) {
  StartProvisioner();
  int index = 0;
  for (const char* form : {"seconds", "date", "ms"}) {
    Fake("DELETE", "/_fake/requests");
    Fake(
        "PUT", "/_fake/throttle",
        {{"capacity", 2}, {"refill_per_s", 0.5}, {"retry_after_form", form}, {"retry_after_s", 2}});
    const std::string name = "wst0000000" + std::to_string(++index);
    Create(name);
    v1::ProvisionedNode node = Settle(name, absl::Seconds(60));
    EXPECT_EQ(node.phase(), "Running") << form << ": " << node.DebugString();
    Fake("DELETE", "/_fake/throttle");
    json all = Fake("GET", "/_fake/requests");
    int throttled = 0;
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i]["status"] != 429) continue;
      ++throttled;
      // The next request to the same path comes no sooner than the 2 s asked (the date form
      // has one-second resolution).
      for (size_t j = i + 1; j < all.size(); ++j) {
        if (all[j]["path"] == all[i]["path"] && all[j]["method"] == all[i]["method"]) {
          EXPECT_GE(all[j]["t_ms"].get<int64_t>() - all[i]["t_ms"].get<int64_t>(),
                    std::string(form) == "date" ? 950 : 1950)
              << form << " " << all[j].dump();
          break;
        }
      }
    }
    EXPECT_GT(throttled, 0) << form;
  }
}

// §6.6 (4): 5xx and connection faults on the PUT and on the polls: retried, one pool.
TEST_F(AzureProvisionerTest, TransientFaultsAreRetriedWithoutDuplicates) {
  Fake("POST", "/_fake/presets/transient_5xx", {{"op", "pool.put"}, {"times", 3}});
  Fake("POST", "/_fake/faults",
       {{"match", {{"op", "op.poll"}}},
        {"action", {{"drop_connection", true}}},
        {"when", {{"times", 1}}}});
  Fake("POST", "/_fake/faults",
       {{"match", {{"op", "op.poll"}}},
        {"action", {{"truncate_body", true}}},
        {"when", {{"times", 1}}}});
  StartProvisioner();
  Create("wsr00000001");
  v1::ProvisionedNode node = Settle("wsr00000001", absl::Seconds(60));
  EXPECT_EQ(node.phase(), "Running") << node.DebugString();
  std::vector<json> puts = Journal("pool.put", "wsr00000001");
  EXPECT_EQ(puts.size(), 4u) << "three faults, then the PUT that was accepted";
  EXPECT_EQ(Count("pool.put", "wsr00000001", 201), 1);
}

// §6.6 (5): the provisioner killed while the pool is being created: after a restart it
// adopts the pool (no second PUT that creates, no duplicate) and follows it to Running.
TEST_F(AzureProvisionerTest, RestartMidCreateAdoptsThePool) {
  Fake("POST", "/_fake/faults",
       {{"match", {{"op", "pool.put"}, {"pool", "wsk00000001"}}},
        {"action", {{"stick_in_progress", true}}}});
  StartProvisioner();
  Create("wsk00000001");
  ASSERT_TRUE(
      WaitFor([&] { return Count("pool.put", "wsk00000001", 201) == 1; }, absl::Seconds(10)));
  provisioner_.Kill();
  StartProvisioner();
  EXPECT_EQ(Create("wsk00000001").phase(), "Creating");
  Fake("POST", "/_fake/pools/wsk00000001/complete");
  v1::ProvisionedNode node = Settle("wsk00000001");
  EXPECT_EQ(node.phase(), "Running") << node.DebugString();
  EXPECT_EQ(Count("pool.put", "wsk00000001", 201), 1) << "never created twice";
  EXPECT_EQ(Count("pool.put", "wsk00000001"), 1) << "no PUT at all after the restart";
  // The restarted provisioner learned the claim's workspace from the pool's node labels.
  const std::string log = ReadFile(dir_.File("provisioner.log"));
  EXPECT_TRUE(absl::StrContains(
      log, "nodeclaim/wsk00000001 (workspace default/ws1): adopting agent pool wsk00000001"))
      << log;
  EXPECT_TRUE(absl::StrContains(
      log, "nodeclaim/wsk00000001 (workspace default/ws1): agent pool running, node "))
      << log;
}

// §6.6 (11) and (7): pools that are not ours survive any delete; a pool named like a claim
// but not ours fails the claim instead of being taken over; missing pools are gone.
TEST_F(AzureProvisionerTest, PoolsThatAreNotOursAreNeverTouched) {
  Fake("POST", "/_fake/pools",
       {{"name", "userpool"},
        {"provisioningState", "Succeeded"},
        {"properties",
         {{"count", 3},
          {"vmSize", "Standard_D2s_v3"},
          {"mode", "User"},
          {"nodeLabels", {{"kaito.sh/nodeclaim", "userpool"}}}}}});
  StartProvisioner();
  EXPECT_TRUE(Delete("nodepool1"));
  EXPECT_TRUE(Delete("userpool"));
  EXPECT_TRUE(Delete("wsnothere01")) << "a pool that does not exist is gone";
  Create("userpool");
  v1::ProvisionedNode conflict = Settle("userpool");
  EXPECT_EQ(conflict.phase(), "Failed");
  EXPECT_EQ(conflict.error_code(), "PoolNameConflict");
  EXPECT_FALSE(conflict.retryable());

  grpc::ClientContext ctx;
  v1::ListProvisionedNodesResponse list;
  ASSERT_TRUE(stub_->ListNodes(&ctx, v1::ListProvisionedNodesRequest(), &list).ok());
  for (const auto& node : list.nodes()) {
    EXPECT_NE(node.claim_name(), "nodepool1");
    EXPECT_NE(node.claim_name(), "userpool");
  }
  EXPECT_TRUE(Journal("pool.delete").empty()) << "no DELETE was sent at all";
  EXPECT_TRUE(Journal("pool.put", "userpool").empty());
  EXPECT_TRUE(PoolsInFake().contains("nodepool1"));
  EXPECT_TRUE(PoolsInFake().contains("userpool"));
}

// §6.6 (10): a token refused by ARM (expired early) is replaced once and the request
// retried; the claim converges.
TEST_F(AzureProvisionerTest, ARefusedTokenIsRefreshedOnce) {
  Fake("POST", "/_fake/faults",
       {{"match", {{"op", "pool.put"}}}, {"action", {{"stick_in_progress", true}}}});
  StartProvisioner();
  Create("wsu00000001");
  ASSERT_TRUE(
      WaitFor([&] { return Count("pool.put", "wsu00000001", 201) == 1; }, absl::Seconds(10)));
  EXPECT_EQ(Fake("GET", "/_fake/tokens")["issued"], 1);
  Fake("POST", "/_fake/tokens/expire");
  Fake("POST", "/_fake/pools/wsu00000001/complete");
  v1::ProvisionedNode node = Settle("wsu00000001");
  EXPECT_EQ(node.phase(), "Running") << node.DebugString();
  EXPECT_EQ(Fake("GET", "/_fake/tokens")["issued"], 2) << "one refresh, not one per request";
  int unauthorized = 0;
  for (const json& e : Fake("GET", "/_fake/requests")) unauthorized += e["status"] == 401;
  EXPECT_EQ(unauthorized, 1);
}

// Secrets and tokens never reach a log line or a status: the provisioner runs at debug
// level through a create, a token refresh after a 401, and an AAD refusal of the secret;
// neither its log nor any claim's status carries the client secret or an access token.
TEST_F(AzureProvisionerTest, SecretsAndTokensNeverReachALogOrAStatus) {
  StartProvisioner();
  Create("wsk00000001");
  EXPECT_EQ(Settle("wsk00000001").phase(), "Running");
  Fake("POST", "/_fake/tokens/expire");
  Create("wsk00000002");
  EXPECT_EQ(Settle("wsk00000002").phase(), "Running");
  EXPECT_EQ(Fake("GET", "/_fake/tokens")["issued"], 2);
  // AAD refuses the secret from now on; the next token read fails and says why.
  Fake("POST", "/_fake/presets/auth_faults", {{"kind", "invalid_client"}});
  Fake("POST", "/_fake/tokens/expire");
  Create("wsk00000003");
  v1::ProvisionedNode refused = Settle("wsk00000003");
  EXPECT_EQ(refused.phase(), "Failed") << refused.DebugString();
  EXPECT_EQ(refused.error_code(), "AuthenticationFailed") << refused.DebugString();
  EXPECT_TRUE(absl::StrContains(refused.message(), "AADSTS")) << refused.message();

  const std::regex token(R"(fake\.[0-9a-f]{8}-[0-9a-f]{4})");
  const std::string log = ReadFile(dir_.File("provisioner.log"));
  ASSERT_TRUE(absl::StrContains(log, "wsk00000003")) << "the log is the provisioner's";
  EXPECT_FALSE(absl::StrContains(log, "fake-secret")) << "the client secret is in the log";
  EXPECT_FALSE(std::regex_search(log, token)) << "an access token is in the log";
  EXPECT_FALSE(absl::StrContains(log, "Bearer ")) << "an Authorization header is in the log";
  for (const char* name : {"wsk00000001", "wsk00000002", "wsk00000003"}) {
    auto node = Get(name);
    ASSERT_TRUE(node.has_value());
    const std::string text = node->DebugString();
    EXPECT_FALSE(absl::StrContains(text, "fake-secret")) << text;
    EXPECT_FALSE(std::regex_search(text, token)) << text;
  }
  // Nor its metrics, which count the refreshes, the refusal and the 401 that led to one.
  const int metrics_port = testing::MetricsPortFromLog(dir_.File("provisioner.log"));
  ASSERT_GT(metrics_port, 0);
  testing::RunResult scraped = RunCommand(
      {"/usr/bin/curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"});
  ASSERT_EQ(scraped.exit_code, 0);
  EXPECT_FALSE(absl::StrContains(scraped.out, "fake-secret"));
  EXPECT_FALSE(std::regex_search(scraped.out, token));
  EXPECT_TRUE(
      std::regex_search(scraped.out, std::regex("kaito_provisioner_token_requests_total [3-9]")))
      << scraped.out;
  EXPECT_TRUE(
      std::regex_search(scraped.out, std::regex("kaito_provisioner_token_failures_total [1-9]")));
  // One per expiry: after each, the next ARM call's 401 brings one new token.
  EXPECT_TRUE(absl::StrContains(scraped.out, "kaito_provisioner_arm_reauthentications_total 2"))
      << scraped.out;
  EXPECT_TRUE(std::regex_search(
      scraped.out, std::regex("kaito_provisioner_arm_request_duration_seconds_count [1-9]")));
  testing::RunResult lint = RunCommand({"/usr/bin/promtool", "check", "metrics"}, scraped.out);
  EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
}

// §6.6 (8): a create that never finishes fails after --azure-create-timeout and its pool is
// deleted (gpu-provisioner waits forever).
TEST_F(AzureProvisionerTest, AStuckCreateTimesOutAndIsCleanedUp) {
  Fake("POST", "/_fake/faults",
       {{"match", {{"op", "pool.put"}}}, {"action", {{"stick_in_progress", true}}}});
  StartProvisioner({"--azure-create-timeout", "3s"});
  Create("wss00000001");
  v1::ProvisionedNode node = Settle("wss00000001");
  EXPECT_EQ(node.phase(), "Failed");
  EXPECT_EQ(node.error_code(), "CreateTimeout");
  EXPECT_TRUE(node.retryable());
  EXPECT_TRUE(WaitFor([&] { return Count("pool.delete", "wss00000001") >= 1; }, absl::Seconds(10)));
}

// §6.6 (6): a claim deleted while its pool is created: the create is preempted and the
// pool goes; the claim is gone once ARM says so.
TEST_F(AzureProvisionerTest, DeletedMidCreateThePoolGoes) {
  Fake("POST", "/_fake/faults",
       {{"match", {{"op", "pool.put"}}}, {"action", {{"stick_in_progress", true}}}});
  StartProvisioner();
  Create("wsd00000001");
  ASSERT_TRUE(
      WaitFor([&] { return Count("pool.put", "wsd00000001", 201) == 1; }, absl::Seconds(10)));
  EXPECT_TRUE(DeleteUntilGone("wsd00000001"));
  EXPECT_EQ(Count("pool.delete", "wsd00000001", 202), 1);
  EXPECT_FALSE(PoolsInFake().contains("wsd00000001"));
}

// §6.6 (7): a pool of ours already being deleted (by an earlier life of the provisioner) is
// waited for, not deleted again.
TEST_F(AzureProvisionerTest, APoolAlreadyDeletingIsWaitedFor) {
  Fake("POST", "/_fake/pools",
       {{"name", "wsg00000001"},
        {"provisioningState", "Deleting"},
        {"properties",
         {{"count", 1},
          {"vmSize", kVmSize},
          {"nodeLabels", {{"kaito.sh/nodeclaim", "wsg00000001"}}},
          {"tags", {{"kaito-managed-by", "kaito-provisioner"}}}}}});
  StartProvisioner();
  EXPECT_TRUE(DeleteUntilGone("wsg00000001"));
  EXPECT_FALSE(PoolsInFake().contains("wsg00000001"));
  EXPECT_TRUE(Journal("pool.delete").empty()) << "ARM's delete in progress is not repeated";
}

// The whole chain with the Azure provider: kaito-server sizes a workspace whose instance
// type has no quota, falls back to the next type of kaito.sh/instance-type-fallback, the
// provisioner creates that pool in the fake ARM, an agent registers as the pool's VM, the
// workspace is Ready; deleting it deletes the pool.
TEST_F(AzureProvisionerTest, WorkspaceFallsBackAndBecomesReadyOnAnAgentPool) {
  Fake("PUT", "/_fake/config", {{"quotas", {{"standardNCADSA100v4Family", 0}}}});
  StartProvisioner();
  const std::string address = StartServer();
  ASSERT_FALSE(address.empty());
  Apply(address, R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: phi
  annotations:
    kaito.sh/instance-type-fallback: Standard_NC40ads_H100_v5
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector:
    matchLabels:
      apps: phi
inference:
  preset:
    name: phi-4-mini-instruct
)");
  // The claim for the fallback type gets its VM from the fake.
  v1::NodeClaim claim = WaitForClaim([](const v1::NodeClaim& c) {
    return c.spec().instance_type() == "Standard_NC40ads_H100_v5" &&
           !c.status().node_name().empty();
  });
  ASSERT_FALSE(claim.metadata().name().empty());
  EXPECT_TRUE(Journal("pool.put", claim.metadata().name()).size() == 1);
  // Nothing was ever PUT for the A100 type: the quota check refused it.
  for (const json& put : Journal("pool.put")) {
    EXPECT_FALSE(absl::StrContains(put["body"].get<std::string>(), "Standard_NC24ads_A100_v4"));
  }
  auto agent = StartAgent(address, claim, "1xH100:94:9.0", "agent.log");
  ASSERT_TRUE(agent.ok()) << agent.status();
  v1::Workspace ws = WaitForWorkspace("phi", "Ready");
  EXPECT_EQ(ws.status().instance_type(), "Standard_NC40ads_H100_v5");
  testing::RunResult events =
      RunCommand({BinDir() + "/kaitoctl", "--server", address, "describe", "workspace", "phi"});
  EXPECT_TRUE(absl::StrContains(events.out, "OfferingUnavailable")) << events.out << events.err;
  EXPECT_TRUE(absl::StrContains(events.out, "quota check before create")) << events.out;

  testing::RunResult deleted =
      RunCommand({BinDir() + "/kaitoctl", "--server", address, "delete", "workspace", "phi"});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_TRUE(
      WaitFor([&] { return !PoolsInFake().contains(claim.metadata().name()); }, absl::Seconds(30)))
      << "deleting the workspace deletes its pool";
  agent->Stop();
  server_.Stop();
}

// §6.6 (9): the VM's agent registers, but its GPU never appears (a driver that did not
// load). Past the initialization timeout the pool is deleted and created again; the second
// machine's GPU is there and the workspace is Ready.
TEST_F(AzureProvisionerTest, ANodeWhoseGpuNeverAppearsIsReplaced) {
  StartProvisioner();
  const std::string address =
      StartServer({"--node-initialization-timeout", "4s", "--claim-retry-base", "500ms"});
  ASSERT_FALSE(address.empty());
  Apply(address, R"(apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata:
  name: phi
resource:
  instanceType: Standard_NC40ads_H100_v5
  labelSelector:
    matchLabels:
      apps: phi
inference:
  preset:
    name: phi-4-mini-instruct
)");
  v1::NodeClaim claim =
      WaitForClaim([](const v1::NodeClaim& c) { return !c.status().node_name().empty(); });
  const std::string pool = claim.metadata().name();
  ASSERT_FALSE(pool.empty());
  auto broken = StartAgent(address, claim, "", "agent-broken.log");
  ASSERT_TRUE(broken.ok()) << broken.status();
  v1::NodeClaim waiting = WaitForClaim([](const v1::NodeClaim& c) {
    for (const auto& cond : c.status().conditions()) {
      if (cond.type() == "Ready" && cond.reason() == "GpuNotFound") return true;
    }
    return false;
  });
  EXPECT_EQ(waiting.status().attempts(), 1);
  // The timeout: the pool is deleted (the VM and its agent with it).
  ASSERT_TRUE(WaitFor([&] { return Count("pool.delete", pool) > 0; }, absl::Seconds(20)))
      << ReadFile(dir_.File("server.log"));
  broken->Stop();
  v1::NodeClaim second = WaitForClaim([](const v1::NodeClaim& c) {
    return c.status().attempts() == 2 && !c.status().node_name().empty();
  });
  EXPECT_EQ(second.metadata().name(), pool);
  EXPECT_EQ(Count("pool.put", pool), 2) << "created again after the delete";
  auto agent = StartAgent(address, second, "1xH100:94:9.0", "agent.log");
  ASSERT_TRUE(agent.ok()) << agent.status();
  WaitForWorkspace("phi", "Ready");
  testing::RunResult described =
      RunCommand({BinDir() + "/kaitoctl", "--server", address, "describe", "nodeclaim", pool});
  EXPECT_TRUE(absl::StrContains(described.out, "NodeNotInitialized")) << described.out;
  EXPECT_EQ(Count("pool.delete", pool), 1);
  agent->Stop();
  server_.Stop();
}

// kaitoctl apply --dry-run shows the quota headroom of the plan's instance type, read
// through the provisioner from the subscription's compute usages.
TEST_F(AzureProvisionerTest, DryRunShowsTheQuotaHeadroom) {
  Fake("PUT", "/_fake/config", {{"quotas", {{"standardNCADSA100v4Family", 30}}}});
  StartProvisioner();
  // The provisioner's own answer, and its check of the request.
  v1::GetQuotaRequest request;
  request.set_instance_type(kVmSize);
  request.set_nodes(1);
  v1::QuotaHeadroom headroom;
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->GetQuota(&ctx, request, &headroom);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  EXPECT_TRUE(headroom.known()) << headroom.message();
  EXPECT_EQ(headroom.family(), "standardNCADSA100v4Family");
  EXPECT_EQ(headroom.family_limit(), 30);
  EXPECT_EQ(headroom.family_used(), 0);
  EXPECT_EQ(headroom.regional_limit(), 1000);
  EXPECT_EQ(headroom.vcpus_per_node(), 24);
  EXPECT_TRUE(headroom.fits());
  request.set_instance_type("Standard_NC24/../x");
  {
    grpc::ClientContext ctx;
    grpc::Status s = stub_->GetQuota(&ctx, request, &headroom);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_TRUE(absl::StrContains(s.error_message(), "instance_type")) << s.error_message();
  }

  const std::string address = StartServer();
  ASSERT_FALSE(address.empty());
  auto dry_run = [&](const std::string& instance_type) {
    const std::string path = dir_.File("dry.yaml");
    std::ofstream(path) << "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nmetadata:\n  name: "
                           "phi\nresource:\n  instanceType: "
                        << instance_type
                        << "\n  labelSelector:\n    matchLabels:\n      apps: phi\ninference:\n  "
                           "preset:\n    name: phi-4-mini-instruct\n";
    return RunCommand(
        {BinDir() + "/kaitoctl", "--server", address, "apply", "--dry-run", "-f", path});
  };
  testing::RunResult fits = dry_run(kVmSize);
  EXPECT_EQ(fits.exit_code, 0) << fits.err;
  EXPECT_TRUE(absl::StrContains(fits.out,
                                "quota:            standardNCADSA100v4Family 0 of 30 vCPUs in use "
                                "(30 free), regional 2 of 1000 vCPUs in use (998 free); 1 node "
                                "x 24 vCPUs fit"))
      << fits.out;
  // Twice the vCPUs of the same family: it does not fit, and the plan says so.
  testing::RunResult too_big = dry_run("Standard_NC48ads_A100_v4");
  EXPECT_EQ(too_big.exit_code, 0) << too_big.err;
  EXPECT_TRUE(absl::StrContains(too_big.out, "1 node x 48 vCPUs do NOT fit")) << too_big.out;
  // (The fake's system pool holds 2 of the regional vCPUs.)
  EXPECT_TRUE(Journal("pool.put").empty()) << "a dry run creates nothing";
  server_.Stop();
}

int ThreadCount(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "Threads:")) return std::stoi(line.substr(8));
  }
  return -1;
}

// 100 claims at once with throttling on: all converge, one pool each, and the provisioner's
// threads do not grow with the claims in flight.
TEST_F(AzureProvisionerTest, HundredConcurrentClaimsUnderThrottling) {
  Fake("PUT", "/_fake/config",
       {{"quotas", {{"standardNCADSA100v4Family", 100000}, {"cores", 100000}}}});
  Fake("PUT", "/_fake/throttle",
       {{"capacity", 60},
        {"refill_per_s", 60},
        {"retry_after_form", "seconds"},
        {"retry_after_s", 1}});
  StartProvisioner({"--azure-requests-per-second", "200", "--azure-burst", "50"});
  // Warm up gRPC and the token so that the baseline counts the threads of a working daemon.
  Create("wsh00000000");
  ASSERT_EQ(Settle("wsh00000000").phase(), "Running");
  const int threads_before = ThreadCount(provisioner_.pid());
  std::vector<std::string> names;
  for (int i = 1; i <= 100; ++i) names.push_back(absl::StrCat("wsh", 10000000 + i));
  for (const std::string& name : names) Create(name);
  const int threads_during = ThreadCount(provisioner_.pid());
  int running = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        running = 0;
        for (const std::string& name : names) {
          auto node = Get(name);
          running += node && node->phase() == "Running";
        }
        return running == 100;
      },
      absl::Seconds(120)))
      << running << " of 100 running";
  EXPECT_LE(threads_during, threads_before + 4) << threads_before << " -> " << threads_during;
  std::map<std::string, int> created;
  for (const json& e : Journal("pool.put")) {
    if (e["status"] == 201) ++created[e["pool"].get<std::string>()];
  }
  EXPECT_EQ(created.size(), 101u);
  for (const auto& [pool, n] : created) EXPECT_EQ(n, 1) << pool;
  EXPECT_EQ(PoolsInFake().size(), 102u) << "101 claims and the system pool";
}

}  // namespace
}  // namespace kaito
