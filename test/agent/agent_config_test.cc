#include "agent/agent_config.h"

#include <gtest/gtest.h>

#include "agent/runtime/simulated_runtime.h"

namespace kaito::agent {
namespace {

TEST(AgentConfigTest, ParsesLabels) {
  auto labels = ParseLabels("kaito.sh/pool=gpu, apps=llm,empty=");
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(labels->size(), 3u);
  EXPECT_EQ(labels->at("kaito.sh/pool"), "gpu");
  EXPECT_EQ(labels->at("apps"), "llm");
  EXPECT_EQ(labels->at("empty"), "");
  EXPECT_TRUE(ParseLabels("")->empty());
}

TEST(AgentConfigTest, LabelErrorsNameTheItem) {
  for (const char* bad : {"a=b,novalue", "a=b,bad key=1", "a=b,k=bad value", "a=1,a=2", "=x"}) {
    auto labels = ParseLabels(bad);
    ASSERT_FALSE(labels.ok()) << bad;
    EXPECT_EQ(labels.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(labels.status().message().find("--labels item \""), absl::string_view::npos)
        << labels.status();
  }
  EXPECT_NE(ParseLabels("a=b,bad key=1").status().message().find("\"bad key=1\""),
            absl::string_view::npos);
}

TEST(AgentConfigTest, ParsesTaints) {
  auto taints = ParseTaints("sku=gpu:NoSchedule,dedicated:NoExecute");
  ASSERT_TRUE(taints.ok()) << taints.status();
  ASSERT_EQ(taints->size(), 2u);
  EXPECT_EQ((*taints)[0].key(), "sku");
  EXPECT_EQ((*taints)[0].value(), "gpu");
  EXPECT_EQ((*taints)[0].effect(), "NoSchedule");
  EXPECT_EQ((*taints)[1].key(), "dedicated");
  EXPECT_EQ((*taints)[1].value(), "");
  EXPECT_FALSE(ParseTaints("sku=gpu").ok());
  EXPECT_NE(ParseTaints("sku=gpu:Sometimes").status().message().find("Sometimes"),
            absl::string_view::npos);
}

TEST(AgentConfigTest, ParsesDurations) {
  EXPECT_EQ(*ParseFlagDuration("--x", "500ms"), absl::Milliseconds(500));
  EXPECT_EQ(*ParseFlagDuration("--x", "1m30s"), absl::Seconds(90));
  EXPECT_FALSE(ParseFlagDuration("--x", "3").ok());
  EXPECT_FALSE(ParseFlagDuration("--x", "-1s").ok());
  EXPECT_NE(ParseFlagDuration("--simulated-pull-delay", "soon")
                .status()
                .message()
                .find("--simulated-pull-delay \"soon\""),
            absl::string_view::npos);
}

TEST(AgentConfigTest, ParsesSimulatedFaults) {
  auto crash = ParseSimulatedFault("llama=crash:10s:3");
  ASSERT_TRUE(crash.ok()) << crash.status();
  EXPECT_EQ(crash->match, "llama");
  EXPECT_EQ(crash->kind, SimulatedFault::Kind::kCrash);
  EXPECT_EQ(crash->after, absl::Seconds(10));
  EXPECT_EQ(crash->exit_code, 3);
  EXPECT_EQ(ParseSimulatedFault("x=pull")->kind, SimulatedFault::Kind::kPullFailure);
  EXPECT_EQ(ParseSimulatedFault("x=start")->kind, SimulatedFault::Kind::kStartFailure);
  EXPECT_EQ(ParseSimulatedFault("x=never-ready")->kind, SimulatedFault::Kind::kNeverReady);
  auto oom = ParseSimulatedFault("registry.io/img=oom:2s");
  ASSERT_TRUE(oom.ok());
  EXPECT_EQ(oom->match, "registry.io/img");
  EXPECT_EQ(oom->exit_code, 137);
  EXPECT_EQ(oom->after, absl::Seconds(2));
  for (const char* bad :
       {"crash", "=crash", "x=explode", "x=crash:soon", "x=crash:1s:999", "x=pull:1s"}) {
    auto fault = ParseSimulatedFault(bad);
    ASSERT_FALSE(fault.ok()) << bad;
    EXPECT_NE(fault.status().message().find(bad), absl::string_view::npos) << fault.status();
  }
}

}  // namespace
}  // namespace kaito::agent
