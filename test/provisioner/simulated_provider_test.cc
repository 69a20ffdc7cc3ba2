// SimulatedProvider with a FakeClock and a FakeBootstrapper: every phase change happens
// exactly when the clock says, and the bootstrapper sees what the node's agent needs.
#include "provisioner/provider/simulated_provider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <set>

#include "common/clock.h"
#include "presets/catalog.h"
#include "provisioner/provider/fake_bootstrapper.h"

namespace kaito::provisioner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kA100x2[] = "Standard_NC48ads_A100_v4";
constexpr char kA100x1[] = "Standard_NC24ads_A100_v4";

const presets::Catalog& EmbeddedCatalog() {
  static const presets::Catalog* catalog = [] {
    auto c = presets::Catalog::Embedded();
    EXPECT_TRUE(c.ok()) << c.status();
    return new presets::Catalog(std::move(*c));
  }();
  return *catalog;
}

v1::CreateNodeRequest Request(const std::string& claim, const std::string& type) {
  v1::CreateNodeRequest request;
  request.set_claim_name(claim);
  request.set_agent_server("127.0.0.1:50051");
  request.mutable_spec()->set_instance_type(type);
  (*request.mutable_spec()->mutable_labels())["apps"] = "phi-4";
  (*request.mutable_spec()->mutable_labels())["kaito.sh/workspace"] = "ws1";
  v1::Taint* taint = request.mutable_spec()->add_taints();
  taint->set_key("sku");
  taint->set_value("gpu");
  taint->set_effect("NoSchedule");
  return request;
}

v1::SimulatedFault Fault(const std::string& type, const std::string& code, bool retryable,
                         const std::string& message = "") {
  v1::SimulatedFault fault;
  fault.set_instance_type(type);
  fault.set_error_code(code);
  fault.set_retryable(retryable);
  fault.set_message(message);
  return fault;
}

class SimulatedProviderTest : public ::testing::Test {
 protected:
  SimulatedProviderTest() { provider_ = MakeProvider(); }

  std::unique_ptr<SimulatedProvider> MakeProvider() {
    SimulatedProviderOptions options;
    options.create_delay = absl::Seconds(2);
    options.delete_delay = absl::Seconds(1);
    return std::make_unique<SimulatedProvider>(&clock_, &EmbeddedCatalog(), "azure", options,
                                               &bootstrapper_);
  }

  // The provider completes inline; these read the completion.
  absl::StatusOr<v1::ProvisionedNode> Create(const v1::CreateNodeRequest& request) {
    absl::StatusOr<v1::ProvisionedNode> out = absl::UnknownError("not completed");
    provider_->CreateNode(request, [&](absl::StatusOr<v1::ProvisionedNode> r) { out = r; });
    return out;
  }
  absl::StatusOr<v1::ProvisionedNode> Get(const std::string& claim) {
    absl::StatusOr<v1::ProvisionedNode> out = absl::UnknownError("not completed");
    provider_->GetNode(claim, [&](absl::StatusOr<v1::ProvisionedNode> r) { out = r; });
    return out;
  }
  absl::StatusOr<bool> Delete(const std::string& claim) {
    absl::StatusOr<bool> out = absl::UnknownError("not completed");
    provider_->DeleteNode(claim, [&](absl::StatusOr<bool> r) { out = r; });
    return out;
  }
  std::vector<v1::ProvisionedNode> List() {
    std::vector<v1::ProvisionedNode> out;
    provider_->ListNodes([&](absl::StatusOr<std::vector<v1::ProvisionedNode>> r) {
      ASSERT_TRUE(r.ok()) << r.status();
      out = *r;
    });
    return out;
  }
  std::string PhaseOf(const std::string& claim) {
    auto node = Get(claim);
    return node.ok() ? node->phase() : node.status().ToString();
  }

  FakeClock clock_;
  FakeBootstrapper bootstrapper_;
  std::unique_ptr<SimulatedProvider> provider_;
};

TEST_F(SimulatedProviderTest, CreateIsCreatingAtOnceAndRunningAfterExactlyTheDelay) {
  auto created = Create(Request("ws1-a", kA100x2));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->phase(), "Creating");
  EXPECT_EQ(created->claim_name(), "ws1-a");
  EXPECT_EQ(created->instance_type(), kA100x2);
  EXPECT_EQ(created->node_name(), "");

  clock_.Advance(absl::Seconds(2) - absl::Nanoseconds(1));
  EXPECT_EQ(PhaseOf("ws1-a"), "Creating");
  EXPECT_THAT(bootstrapper_.started(), IsEmpty());

  clock_.Advance(absl::Nanoseconds(1));
  auto node = Get("ws1-a");
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ(node->phase(), "Running");
  EXPECT_THAT(node->node_name(), MatchesRegex("aks-ws1-a-[0-9a-f]{6}-vmss000000"));
  EXPECT_THAT(node->provider_id(),
              StartsWith("azure:///subscriptions/simulated/resourceGroups/simulated/providers/"
                         "Microsoft.Compute/virtualMachineScaleSets/aks-ws1-a-"));
  EXPECT_THAT(node->provider_id(), HasSubstr("-vmss/virtualMachines/0"));
  EXPECT_EQ(node->error_code(), "");

  ASSERT_THAT(bootstrapper_.started(), SizeIs(1));
  const BootstrapSpec spec = bootstrapper_.started()[0];
  EXPECT_EQ(spec.node_name, node->node_name());
  EXPECT_EQ(spec.provider_id, node->provider_id());
  EXPECT_EQ(spec.instance_type, kA100x2);
  EXPECT_EQ(spec.agent_server, "127.0.0.1:50051");
  EXPECT_THAT(spec.labels, ElementsAre(Pair("apps", "phi-4"), Pair("kaito.sh/nodeclaim", "ws1-a"),
                                       Pair("kaito.sh/workspace", "ws1"),
                                       Pair("node.kubernetes.io/instance-type", kA100x2)));
  ASSERT_THAT(spec.taints, SizeIs(1));
  EXPECT_EQ(spec.taints[0].key(), "sku");
  EXPECT_EQ(spec.taints[0].value(), "gpu");
  EXPECT_EQ(spec.taints[0].effect(), "NoSchedule");
  // The SKU: 2 x A100 with 160 GiB in all.
  ASSERT_THAT(spec.gpus, SizeIs(2));
  std::set<std::string> uuids;
  for (const v1::GpuInfo& gpu : spec.gpus) {
    EXPECT_EQ(gpu.model(), "A100");
    EXPECT_EQ(gpu.memory_bytes(), 80 * presets::kGiB);
    EXPECT_EQ(gpu.compute_capability(), "8.0");
    EXPECT_TRUE(gpu.healthy());
    EXPECT_THAT(gpu.uuid(), MatchesRegex("GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                                         "[0-9a-f]{12}"));
    uuids.insert(gpu.uuid());
  }
  EXPECT_THAT(uuids, SizeIs(2));
}

TEST_F(SimulatedProviderTest, CreateIsIdempotentByClaimName) {
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  clock_.Advance(absl::Seconds(1));
  auto repeat = Create(Request("ws1-a", kA100x1));
  ASSERT_TRUE(repeat.ok());
  EXPECT_EQ(repeat->phase(), "Creating");
  // The repeat did not restart the delay.
  clock_.Advance(absl::Seconds(1));
  auto running = Create(Request("ws1-a", kA100x1));
  ASSERT_TRUE(running.ok());
  EXPECT_EQ(running->phase(), "Running");
  auto again = Create(Request("ws1-a", kA100x1));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->node_name(), running->node_name());
  EXPECT_EQ(again->provider_id(), running->provider_id());
  clock_.Advance(absl::Seconds(10));
  EXPECT_THAT(bootstrapper_.started(), SizeIs(1));
  EXPECT_EQ(clock_.pending_timers(), 0u);
}

TEST_F(SimulatedProviderTest, NodeNamesAreStablePerClaimAndDistinctAcrossClaims) {
  EXPECT_EQ(SimulatedNodeName("ws1-a"), SimulatedNodeName("ws1-a"));
  EXPECT_NE(SimulatedNodeName("ws1-a"), SimulatedNodeName("ws1-b"));
  EXPECT_THAT(SimulatedProviderId("aws", "ws1-a"),
              MatchesRegex("aws:///simulated-1a/i-0[0-9a-f]{16}"));
}

TEST_F(SimulatedProviderTest, FaultFailsTheCreateWithTheCloudsErrorAndStartsNothing) {
  provider_->SetFaults({Fault(kA100x1, "QuotaExceeded", true)});
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  EXPECT_EQ(PhaseOf("ws1-a"), "Creating");
  clock_.Advance(absl::Seconds(2));
  auto node = Get("ws1-a");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->phase(), "Failed");
  EXPECT_EQ(node->error_code(), "QuotaExceeded");
  EXPECT_TRUE(node->retryable());
  EXPECT_THAT(node->message(),
              HasSubstr("Operation could not be completed as it results in exceeding approved "
                        "standardNCADSA100v4Family Cores quota"));
  EXPECT_THAT(node->message(), HasSubstr("Additional Required: 24"));
  EXPECT_EQ(node->node_name(), "");
  EXPECT_THAT(bootstrapper_.started(), IsEmpty());
}

TEST_F(SimulatedProviderTest, FaultKeepsItsOwnMessageAndAppliesOnlyToItsType) {
  provider_->SetFaults({Fault(kA100x1, "AllocationFailed", false, "no capacity today")});
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  ASSERT_TRUE(Create(Request("ws1-b", kA100x2)).ok());
  clock_.Advance(absl::Seconds(2));
  auto failed = Get("ws1-a");
  ASSERT_TRUE(failed.ok());
  EXPECT_EQ(failed->phase(), "Failed");
  EXPECT_EQ(failed->error_code(), "AllocationFailed");
  EXPECT_FALSE(failed->retryable());
  EXPECT_EQ(failed->message(), "no capacity today");
  EXPECT_EQ(PhaseOf("ws1-b"), "Running");
}

TEST_F(SimulatedProviderTest, FaultWithoutInstanceTypeAppliesToEveryType) {
  provider_->SetFaults({Fault("", "ZonalAllocationFailed", true)});
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  ASSERT_TRUE(Create(Request("ws1-b", kA100x2)).ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(PhaseOf("ws1-a"), "Failed");
  EXPECT_EQ(PhaseOf("ws1-b"), "Failed");
  EXPECT_THAT(Get("ws1-b")->message(), HasSubstr("sufficient capacity"));
}

TEST_F(SimulatedProviderTest, FaultsInForceWhenTheDelayEndsDecide) {
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  clock_.Advance(absl::Seconds(1));
  provider_->SetFaults({Fault(kA100x1, "QuotaExceeded", true)});
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(PhaseOf("ws1-a"), "Failed");
}

TEST_F(SimulatedProviderTest, LiftingTheFaultAndCreatingAgainRuns) {
  provider_->SetFaults({Fault(kA100x1, "QuotaExceeded", true)});
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(PhaseOf("ws1-a"), "Failed");
  // Failed stays Failed until asked again.
  clock_.Advance(absl::Seconds(10));
  ASSERT_EQ(PhaseOf("ws1-a"), "Failed");

  provider_->SetFaults({});
  EXPECT_THAT(provider_->faults(), IsEmpty());
  auto retry = Create(Request("ws1-a", kA100x1));
  ASSERT_TRUE(retry.ok());
  EXPECT_EQ(retry->phase(), "Creating");
  EXPECT_EQ(retry->error_code(), "");
  EXPECT_EQ(retry->message(), "");
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(PhaseOf("ws1-a"), "Running");
  EXPECT_THAT(bootstrapper_.started(), SizeIs(1));
}

TEST_F(SimulatedProviderTest, UnknownInstanceTypeFailsWithSkuNotAvailable) {
  ASSERT_TRUE(Create(Request("ws1-a", "Standard_Nonexistent_v9")).ok());
  clock_.Advance(absl::Seconds(2));
  auto node = Get("ws1-a");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->phase(), "Failed");
  EXPECT_EQ(node->error_code(), "SkuNotAvailable");
  EXPECT_FALSE(node->retryable());
  EXPECT_THAT(node->message(), HasSubstr("Standard_Nonexistent_v9"));
  EXPECT_THAT(node->message(), HasSubstr("not in the SKU catalog of cloud azure"));
  EXPECT_THAT(bootstrapper_.started(), IsEmpty());
}

TEST_F(SimulatedProviderTest, BootstrapFailureFailsTheCreate) {
  bootstrapper_.set_start_error(absl::UnavailableError("fleet is full"));
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  clock_.Advance(absl::Seconds(2));
  auto node = Get("ws1-a");
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->phase(), "Failed");
  EXPECT_EQ(node->error_code(), "BootstrapFailed");
  EXPECT_TRUE(node->retryable());
  EXPECT_THAT(node->message(), HasSubstr("fleet is full"));
}

TEST_F(SimulatedProviderTest, DeleteStopsTheNodeAfterTheDelayAndForgetsTheClaim) {
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  clock_.Advance(absl::Seconds(2));
  const std::string node_name = Get("ws1-a")->node_name();

  auto gone = Delete("ws1-a");
  ASSERT_TRUE(gone.ok());
  EXPECT_FALSE(*gone);
  EXPECT_EQ(PhaseOf("ws1-a"), "Deleting");
  // A repeat while deleting is not gone either, and does not restart the delay.
  clock_.Advance(absl::Milliseconds(500));
  EXPECT_FALSE(*Delete("ws1-a"));
  // A create while deleting reports the claim as it is.
  EXPECT_EQ(Create(Request("ws1-a", kA100x1))->phase(), "Deleting");

  clock_.Advance(absl::Milliseconds(500) - absl::Nanoseconds(1));
  EXPECT_THAT(bootstrapper_.stopped(), IsEmpty());
  clock_.Advance(absl::Nanoseconds(1));
  EXPECT_THAT(bootstrapper_.stopped(), ElementsAre(node_name));
  EXPECT_THAT(bootstrapper_.running(), IsEmpty());
  EXPECT_TRUE(absl::IsNotFound(Get("ws1-a").status()));
  EXPECT_TRUE(*Delete("ws1-a"));
  EXPECT_EQ(clock_.pending_timers(), 0u);

  // Created again, it is a new node of the same name.
  ASSERT_EQ(Create(Request("ws1-a", kA100x1))->phase(), "Creating");
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Get("ws1-a")->node_name(), node_name);
  EXPECT_THAT(bootstrapper_.running(), SizeIs(1));
}

// Calls `hook` from inside `StartNode`, as a delete arriving while the agent starts.
class HookedBootstrapper : public FakeBootstrapper {
 public:
  absl::Status StartNode(const BootstrapSpec& spec) override {
    if (hook) hook();
    return FakeBootstrapper::StartNode(spec);
  }
  std::function<void()> hook;
};

TEST(SimulatedProviderRaceTest, DeleteWhileTheAgentStartsStopsItAfterTheDelay) {
  FakeClock clock;
  HookedBootstrapper bootstrapper;
  SimulatedProvider provider(&clock, &EmbeddedCatalog(), "azure", SimulatedProviderOptions(),
                             &bootstrapper);
  std::optional<absl::StatusOr<bool>> gone;
  bootstrapper.hook = [&] {
    provider.DeleteNode("ws1-a", [&](absl::StatusOr<bool> r) { gone = r; });
  };
  provider.CreateNode(Request("ws1-a", kA100x1), [](absl::StatusOr<v1::ProvisionedNode>) {});
  clock.Advance(absl::Seconds(2));
  ASSERT_TRUE(gone.has_value());
  EXPECT_FALSE(**gone);
  EXPECT_THAT(bootstrapper.running(), SizeIs(1));
  bootstrapper.hook = nullptr;
  clock.Advance(absl::Seconds(1));
  EXPECT_THAT(bootstrapper.stopped(), ElementsAre(SimulatedNodeName("ws1-a")));
  EXPECT_THAT(bootstrapper.running(), IsEmpty());
}

TEST_F(SimulatedProviderTest, DeleteOfUnknownClaimIsGoneAtOnce) {
  auto gone = Delete("never-created");
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(*gone);
  EXPECT_EQ(clock_.pending_timers(), 0u);
  EXPECT_THAT(bootstrapper_.stopped(), IsEmpty());
}

TEST_F(SimulatedProviderTest, DeleteWhileCreatingCancelsTheCreate) {
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(*Delete("ws1-a"));
  EXPECT_EQ(clock_.pending_timers(), 1u);  // The delete's; the create's is cancelled.
  clock_.Advance(absl::Seconds(5));
  EXPECT_TRUE(absl::IsNotFound(Get("ws1-a").status()));
  EXPECT_THAT(bootstrapper_.started(), IsEmpty());
  EXPECT_THAT(bootstrapper_.stopped(), IsEmpty());
}

TEST_F(SimulatedProviderTest, DeleteOfFailedClaimStopsNoAgent) {
  ASSERT_TRUE(Create(Request("ws1-a", "Standard_Nonexistent_v9")).ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(PhaseOf("ws1-a"), "Failed");
  EXPECT_FALSE(*Delete("ws1-a"));
  EXPECT_EQ(Get("ws1-a")->error_code(), "");
  clock_.Advance(absl::Seconds(1));
  EXPECT_TRUE(absl::IsNotFound(Get("ws1-a").status()));
  EXPECT_THAT(bootstrapper_.stopped(), IsEmpty());
}

TEST_F(SimulatedProviderTest, ListNodesReturnsEveryClaimInNameOrder) {
  EXPECT_THAT(List(), IsEmpty());
  provider_->SetFaults({Fault(kA100x2, "QuotaExceeded", true)});
  ASSERT_TRUE(Create(Request("ws1-c", kA100x1)).ok());
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  ASSERT_TRUE(Create(Request("ws1-b", kA100x2)).ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(Create(Request("ws1-d", kA100x1)).ok());
  ASSERT_FALSE(*Delete("ws1-c"));

  std::vector<v1::ProvisionedNode> nodes = List();
  ASSERT_THAT(nodes, SizeIs(4));
  std::vector<std::pair<std::string, std::string>> phases;
  for (const auto& n : nodes) phases.emplace_back(n.claim_name(), n.phase());
  EXPECT_THAT(phases, ElementsAre(Pair("ws1-a", "Running"), Pair("ws1-b", "Failed"),
                                  Pair("ws1-c", "Deleting"), Pair("ws1-d", "Creating")));
  EXPECT_THAT(provider_->CountByPhase(), ElementsAre(Pair("Creating", 1), Pair("Deleting", 1),
                                                     Pair("Failed", 1), Pair("Running", 1)));
}

TEST_F(SimulatedProviderTest, BadRequestsAreInvalidArgumentAndUnknownGetIsNotFound) {
  auto bad = Create(Request("Not_A_Label", kA100x1));
  EXPECT_TRUE(absl::IsInvalidArgument(bad.status())) << bad.status();
  EXPECT_THAT(bad.status().message(), HasSubstr("claim_name"));
  auto no_type = Create(Request("ws1-a", ""));
  EXPECT_TRUE(absl::IsInvalidArgument(no_type.status()));
  EXPECT_THAT(no_type.status().message(), HasSubstr("spec.instance_type"));
  EXPECT_TRUE(absl::IsNotFound(Get("ws1-a").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Delete("").status()));
  EXPECT_EQ(clock_.pending_timers(), 0u);
  EXPECT_EQ(provider_->Name(), "simulated");
}

TEST_F(SimulatedProviderTest, DestructionCancelsPendingTimers) {
  ASSERT_TRUE(Create(Request("ws1-a", kA100x1)).ok());
  ASSERT_TRUE(Create(Request("ws1-b", kA100x1)).ok());
  clock_.Advance(absl::Seconds(2));
  ASSERT_FALSE(*Delete("ws1-b"));
  ASSERT_TRUE(Create(Request("ws1-c", kA100x1)).ok());
  EXPECT_EQ(clock_.pending_timers(), 2u);
  provider_.reset();
  EXPECT_EQ(clock_.pending_timers(), 0u);
  clock_.Advance(absl::Seconds(10));
  EXPECT_THAT(bootstrapper_.started(), SizeIs(2));
}

TEST(SimulatedFaultTest, ParsesTypeCodeAndRetryable) {
  auto fault = ParseSimulatedFault("Standard_NC24ads_A100_v4=QuotaExceeded");
  ASSERT_TRUE(fault.ok()) << fault.status();
  EXPECT_EQ(fault->instance_type(), "Standard_NC24ads_A100_v4");
  EXPECT_EQ(fault->error_code(), "QuotaExceeded");
  EXPECT_FALSE(fault->retryable());
  EXPECT_EQ(fault->message(), "");

  fault = ParseSimulatedFault("*=AllocationFailed:retryable");
  ASSERT_TRUE(fault.ok()) << fault.status();
  EXPECT_EQ(fault->instance_type(), "");
  EXPECT_EQ(fault->error_code(), "AllocationFailed");
  EXPECT_TRUE(fault->retryable());

  fault = ParseSimulatedFault("=SkuNotAvailable");
  ASSERT_TRUE(fault.ok());
  EXPECT_EQ(fault->instance_type(), "");

  EXPECT_TRUE(absl::IsInvalidArgument(ParseSimulatedFault("QuotaExceeded").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseSimulatedFault("X=").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ParseSimulatedFault("X=Code:sometimes").status()));
}

TEST(SimulatedFaultTest, MessagesReadAsAzuresDo) {
  EXPECT_THAT(SimulatedCloudMessage("QuotaExceeded", "Standard_NC6s_v3", "eastus"),
              HasSubstr("exceeding approved standardNCSv3Family Cores quota"));
  EXPECT_THAT(SimulatedCloudMessage("SkuNotAvailable", "Standard_NC6s_v3", "eastus"),
              HasSubstr("is currently not available in location 'eastus'"));
  EXPECT_THAT(
      SimulatedCloudMessage("OverconstrainedAllocationRequest", "Standard_NC6s_v3", "eastus"),
      HasSubstr("constraints cannot be allocated"));
  EXPECT_THAT(SimulatedCloudMessage("SomethingElse", "Standard_NC6s_v3", "eastus"),
              HasSubstr("SomethingElse"));
}

}  // namespace
}  // namespace kaito::provisioner
