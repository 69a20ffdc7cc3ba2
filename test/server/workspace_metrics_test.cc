#include "server/workspace_metrics.h"

#include <gtest/gtest.h>

namespace kaito::server {
namespace {

v1::Workspace WithState(const std::string& state) {
  v1::Workspace ws;
  ws.mutable_status()->set_state(state);
  return ws;
}

TEST(WorkspaceMetricsTest, KaitosPhases) {
  EXPECT_EQ(KaitoWorkspacePhase(WithState("")), "pending");
  EXPECT_EQ(KaitoWorkspacePhase(WithState("Pending")), "pending");
  EXPECT_EQ(KaitoWorkspacePhase(WithState("Running")), "pending");
  EXPECT_EQ(KaitoWorkspacePhase(WithState("NotReady")), "pending");
  EXPECT_EQ(KaitoWorkspacePhase(WithState("Ready")), "succeeded");
  EXPECT_EQ(KaitoWorkspacePhase(WithState("Succeeded")), "succeeded");
  EXPECT_EQ(KaitoWorkspacePhase(WithState("Failed")), "error");
  v1::Workspace deleting = WithState("Ready");
  deleting.mutable_metadata()->mutable_deletion_timestamp()->set_seconds(1);
  EXPECT_EQ(KaitoWorkspacePhase(deleting), "deleting");
}

}  // namespace
}  // namespace kaito::server
