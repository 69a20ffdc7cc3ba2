#include "provisioner/provider/request_validation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace kaito::provisioner {
namespace {

using ::testing::HasSubstr;

v1::CreateNodeRequest Valid() {
  v1::CreateNodeRequest request;
  request.set_claim_name("ws1-a");
  request.mutable_spec()->set_instance_type("Standard_NC24ads_A100_v4");
  (*request.mutable_spec()->mutable_labels())["kaito.sh/workspace"] = "ws1";
  v1::Taint* taint = request.mutable_spec()->add_taints();
  taint->set_key("sku");
  taint->set_value("gpu");
  taint->set_effect("NoSchedule");
  return request;
}

TEST(RequestValidationTest, AcceptsAWellFormedRequest) {
  EXPECT_TRUE(ValidateCreateNodeRequest(Valid()).ok());
  EXPECT_TRUE(ValidateClaimName(std::string(63, 'a')).ok());
}

TEST(RequestValidationTest, ClaimNameMustBeADnsLabelOfAtMost63Characters) {
  for (const std::string& name : {std::string(""), std::string("Upper"), std::string("a_b"),
                                  std::string("-a"), std::string(64, 'a')}) {
    absl::Status s = ValidateClaimName(name);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << name;
    EXPECT_THAT(s.message(), HasSubstr("claim_name: ")) << name;
  }
  v1::CreateNodeRequest request = Valid();
  request.set_claim_name(std::string(64, 'a'));
  EXPECT_THAT(ValidateCreateNodeRequest(request).message(), HasSubstr("claim_name: Invalid value"));
}

TEST(RequestValidationTest, NamesEveryBadFieldAtOnce) {
  v1::CreateNodeRequest request = Valid();
  request.mutable_spec()->clear_instance_type();
  (*request.mutable_spec()->mutable_labels())["bad key!"] = "v";
  request.mutable_spec()->mutable_taints(0)->set_effect("Sometimes");
  absl::Status s = ValidateCreateNodeRequest(request);
  ASSERT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("spec.instance_type: Required value"));
  EXPECT_THAT(s.message(), HasSubstr("spec.labels[bad key!]"));
  EXPECT_THAT(s.message(), HasSubstr("spec.taints[0].effect: Unsupported value"));
}

TEST(RequestValidationTest, QuotaRequestsNameTheirBadFields) {
  v1::GetQuotaRequest request;
  request.set_instance_type("Standard_NC24ads_A100_v4");
  request.set_nodes(3);
  EXPECT_TRUE(ValidateGetQuotaRequest(request).ok());
  request.clear_instance_type();
  EXPECT_THAT(ValidateGetQuotaRequest(request).message(),
              HasSubstr("instance_type: Required value"));
  request.set_instance_type("Standard_NC24?api-version=x");
  request.set_nodes(-1);
  absl::Status s = ValidateGetQuotaRequest(request);
  ASSERT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("instance_type: Invalid value"));
  EXPECT_THAT(s.message(), HasSubstr("nodes: Invalid value: -1"));
  request.set_instance_type(std::string(129, 'a'));
  request.set_nodes(10001);
  s = ValidateGetQuotaRequest(request);
  EXPECT_THAT(s.message(), HasSubstr("instance_type: Invalid value"));
  EXPECT_THAT(s.message(), HasSubstr("nodes: Invalid value: 10001"));
}

}  // namespace
}  // namespace kaito::provisioner
