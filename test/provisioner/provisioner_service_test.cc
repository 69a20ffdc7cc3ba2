// The gRPC services on 127.0.0.1:0 with a real channel, over the simulated provider on a
// RealClock with short delays. Waiting is on conditions with a deadline.
#include "provisioner/provisioner_service.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>

#include "common/clock.h"
#include "presets/catalog.h"
#include "provisioner/provider/fake_bootstrapper.h"
#include "provisioner/provider/simulated_provider.h"
#include "support/process.h"

namespace kaito::provisioner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

constexpr absl::Duration kDeadline = absl::Seconds(20);

presets::Catalog LoadCatalog() {
  auto catalog = presets::Catalog::Embedded();
  EXPECT_TRUE(catalog.ok()) << catalog.status();
  return std::move(*catalog);
}

SimulatedProviderOptions ShortDelays() {
  SimulatedProviderOptions options;
  options.create_delay = absl::Milliseconds(20);
  options.delete_delay = absl::Milliseconds(20);
  return options;
}

class ProvisionerServiceTest : public ::testing::Test {
 protected:
  ProvisionerServiceTest()
      : catalog_(LoadCatalog()),
        provider_(&clock_, &catalog_, "azure", ShortDelays(), &bootstrapper_),
        service_(&provider_),
        cloud_service_(&provider_) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    builder.RegisterService(&cloud_service_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(port_, 0);
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                       grpc::InsecureChannelCredentials());
    stub_ = v1::ProvisionerService::NewStub(channel);
    cloud_stub_ = v1::SimulatedCloudService::NewStub(channel);
  }
  ~ProvisionerServiceTest() override { server_->Shutdown(); }

  grpc::Status Create(const std::string& claim, const std::string& type,
                      v1::ProvisionedNode* node) {
    v1::CreateNodeRequest request;
    request.set_claim_name(claim);
    request.set_agent_server("127.0.0.1:50051");
    request.mutable_spec()->set_instance_type(type);
    (*request.mutable_spec()->mutable_labels())["apps"] = "falcon";
    grpc::ClientContext ctx;
    return stub_->CreateNode(&ctx, request, node);
  }
  grpc::Status Get(const std::string& claim, v1::ProvisionedNode* node) {
    v1::GetNodeRequest request;
    request.set_claim_name(claim);
    grpc::ClientContext ctx;
    return stub_->GetNode(&ctx, request, node);
  }
  grpc::Status Delete(const std::string& claim, bool* gone) {
    v1::DeleteNodeRequest request;
    request.set_claim_name(claim);
    v1::DeleteNodeResponse response;
    grpc::ClientContext ctx;
    grpc::Status status = stub_->DeleteNode(&ctx, request, &response);
    *gone = response.gone();
    return status;
  }
  grpc::Status SetFaults(const std::vector<v1::SimulatedFault>& faults) {
    v1::SetFaultsRequest request;
    for (const auto& f : faults) *request.add_faults() = f;
    v1::SetFaultsResponse response;
    grpc::ClientContext ctx;
    return cloud_stub_->SetFaults(&ctx, request, &response);
  }
  // Waits until GetNode reports `phase`; the last reply is left in `node`.
  bool WaitForPhase(const std::string& claim, const std::string& phase, v1::ProvisionedNode* node) {
    return testing::WaitFor(
        [&] {
          node->Clear();
          return Get(claim, node).ok() && node->phase() == phase;
        },
        kDeadline);
  }

  // Declared in dependency order: the server goes first, the clock last.
  RealClock clock_;
  presets::Catalog catalog_;
  FakeBootstrapper bootstrapper_;
  SimulatedProvider provider_;
  ProvisionerGrpcService service_;
  SimulatedCloudGrpcService cloud_service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::ProvisionerService::Stub> stub_;
  std::unique_ptr<v1::SimulatedCloudService::Stub> cloud_stub_;
};

TEST_F(ProvisionerServiceTest, CreateNodeWithBadClaimNameIsInvalidArgumentNamingTheField) {
  v1::ProvisionedNode node;
  grpc::Status status = Create("Bad_Name", "Standard_NC24ads_A100_v4", &node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("claim_name"));

  status = Create(std::string(64, 'a'), "Standard_NC24ads_A100_v4", &node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("claim_name"));

  status = Create("ws1-a", "", &node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("spec.instance_type"));

  status = Get("", &node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("claim_name"));
  EXPECT_TRUE(bootstrapper_.started().empty());
}

TEST_F(ProvisionerServiceTest, CreateGetDeleteRoundTrip) {
  v1::ProvisionedNode node;
  grpc::Status status = Get("ws1-a", &node);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);

  ASSERT_TRUE(Create("ws1-a", "Standard_NC24ads_A100_v4", &node).ok());
  EXPECT_EQ(node.claim_name(), "ws1-a");
  EXPECT_EQ(node.phase(), "Creating");

  ASSERT_TRUE(WaitForPhase("ws1-a", "Running", &node)) << node.ShortDebugString();
  EXPECT_EQ(node.node_name(), SimulatedNodeName("ws1-a"));
  EXPECT_EQ(node.provider_id(), SimulatedProviderId("azure", "ws1-a"));
  EXPECT_EQ(node.instance_type(), "Standard_NC24ads_A100_v4");
  ASSERT_THAT(bootstrapper_.started(), SizeIs(1));
  EXPECT_EQ(bootstrapper_.started()[0].labels.at("apps"), "falcon");
  EXPECT_THAT(bootstrapper_.started()[0].gpus, SizeIs(1));

  v1::ProvisionedNode repeat;
  ASSERT_TRUE(Create("ws1-a", "Standard_NC24ads_A100_v4", &repeat).ok());
  EXPECT_EQ(repeat.node_name(), node.node_name());

  v1::ListProvisionedNodesResponse list;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->ListNodes(&ctx, v1::ListProvisionedNodesRequest(), &list).ok());
  }
  ASSERT_THAT(list.nodes(), SizeIs(1));
  EXPECT_EQ(list.nodes(0).node_name(), node.node_name());

  bool gone = true;
  ASSERT_TRUE(Delete("ws1-a", &gone).ok());
  EXPECT_FALSE(gone);
  ASSERT_TRUE(testing::WaitFor(
      [&] { return Get("ws1-a", &node).error_code() == grpc::StatusCode::NOT_FOUND; }, kDeadline));
  EXPECT_THAT(bootstrapper_.stopped(), ElementsAre(SimulatedNodeName("ws1-a")));
  ASSERT_TRUE(Delete("ws1-a", &gone).ok());
  EXPECT_TRUE(gone);
}

TEST_F(ProvisionerServiceTest, SetFaultsThroughTheSimulatedCloudTakesEffect) {
  v1::SimulatedFault fault;
  fault.set_instance_type("Standard_NC24ads_A100_v4");
  fault.set_error_code("QuotaExceeded");
  fault.set_retryable(true);
  ASSERT_TRUE(SetFaults({fault}).ok());

  v1::ProvisionedNode node;
  ASSERT_TRUE(Create("ws1-a", "Standard_NC24ads_A100_v4", &node).ok());
  ASSERT_TRUE(WaitForPhase("ws1-a", "Failed", &node)) << node.ShortDebugString();
  EXPECT_EQ(node.error_code(), "QuotaExceeded");
  EXPECT_TRUE(node.retryable());
  EXPECT_THAT(node.message(), HasSubstr("standardNCADSA100v4Family Cores quota"));
  EXPECT_TRUE(bootstrapper_.started().empty());

  ASSERT_TRUE(SetFaults({}).ok());
  ASSERT_TRUE(Create("ws1-a", "Standard_NC24ads_A100_v4", &node).ok());
  EXPECT_EQ(node.phase(), "Creating");
  ASSERT_TRUE(WaitForPhase("ws1-a", "Running", &node)) << node.ShortDebugString();
  EXPECT_THAT(bootstrapper_.started(), SizeIs(1));
}

TEST_F(ProvisionerServiceTest, SetFaultsWithoutErrorCodeIsInvalidArgument) {
  v1::SimulatedFault fault;
  fault.set_instance_type("Standard_NC24ads_A100_v4");
  grpc::Status status = SetFaults({fault});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("faults[0].error_code"));
  EXPECT_TRUE(provider_.faults().empty());
}

}  // namespace
}  // namespace kaito::provisioner
