#include "common/k8s_names.h"

#include <gtest/gtest.h>

namespace kaito {
namespace {

TEST(K8sNamesTest, DnsLabel) {
  for (const std::string& ok : {std::string("a"), std::string("workspace-phi-4"), std::string("a1"),
                               std::string(63, 'a')}) {
    EXPECT_EQ(CheckDnsLabel(ok), "") << ok;
  }
  for (std::string bad : {std::string(""), std::string("phi-3.5-mini"), std::string("-a"),
                          std::string("a-"), std::string("A"), std::string(64, 'a'),
                          std::string("a_b"), std::string("\xff\xfe")}) {
    EXPECT_NE(CheckDnsLabel(bad), "") << bad;
  }
}

TEST(K8sNamesTest, DnsSubdomain) {
  EXPECT_EQ(CheckDnsSubdomain("hf-token"), "");
  EXPECT_EQ(CheckDnsSubdomain("a.b.c"), "");
  EXPECT_NE(CheckDnsSubdomain("a..b"), "");
  EXPECT_NE(CheckDnsSubdomain(".a"), "");
  EXPECT_NE(CheckDnsSubdomain(std::string(254, 'a')), "");
}

TEST(K8sNamesTest, QualifiedNamesAndValues) {
  EXPECT_EQ(CheckQualifiedName("kaito.sh/runtime"), "");
  EXPECT_EQ(CheckQualifiedName("app"), "");
  EXPECT_EQ(CheckQualifiedName("My_Key.1"), "");
  EXPECT_NE(CheckQualifiedName("/x"), "");
  EXPECT_NE(CheckQualifiedName("a/b/c"), "");
  EXPECT_NE(CheckQualifiedName("Bad_Prefix/x"), "");
  EXPECT_EQ(CheckLabelValue(""), "");
  EXPECT_EQ(CheckLabelValue("v1.0"), "");
  EXPECT_NE(CheckLabelValue("has space"), "");
  EXPECT_NE(CheckLabelValue(std::string(64, 'a')), "");
  EXPECT_EQ(CheckConfigMapKey("inference_config.yaml"), "");
  EXPECT_NE(CheckConfigMapKey("a/b"), "");
  EXPECT_NE(CheckConfigMapKey(".."), "");
}

}  // namespace
}  // namespace kaito
