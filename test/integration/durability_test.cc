// kill -9 of kaito-server in the middle of many concurrent writes, then restart: every
// write a client was told succeeded is there, the database opens cleanly, and watches
// resume from a revision taken before the crash.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

v1::Workspace Named(const std::string& name) {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name(name);
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["app"] = name;
  ws.mutable_inference()->mutable_preset()->set_name("phi-4");
  return ws;
}

TEST(DurabilityTest, KillNineDuringConcurrentWritesLosesNothingAcknowledged) {
  TempDir dir;
  auto server = StartServer(dir.path(), {"--no-controllers"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::WorkspaceService::NewStub(channel);

  absl::Mutex mu;
  std::map<std::string, int64_t> acked;  // name -> resourceVersion
  std::atomic<bool> stop{false};
  std::atomic<int> acks{0};
  constexpr int kWriters = 16;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      // Each writer has its own channel, so writes really are concurrent connections.
      auto ch = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
      auto s = v1::WorkspaceService::NewStub(ch);
      for (int i = 0; !stop.load(); ++i) {
        const std::string name = "w" + std::to_string(w) + "-" + std::to_string(i);
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::CreateWorkspaceRequest req;
        *req.mutable_workspace() = Named(name);
        v1::CreateWorkspaceResponse resp;
        grpc::Status st = s->CreateWorkspace(&ctx, req, &resp);
        if (!st.ok()) return;  // The server is gone.
        int64_t rv = 0;
        ASSERT_TRUE(absl::SimpleAtoi(resp.workspace().metadata().resource_version(), &rv));
        absl::MutexLock lock(&mu);
        acked[name] = rv;
        ++acks;
      }
    });
  }
  // Kill while the writers are in full flight.
  ASSERT_TRUE(WaitFor([&] { return acks.load() >= 1500; }, absl::Seconds(60)));
  server->daemon.Kill();
  stop = true;
  for (auto& t : writers) t.join();

  std::map<std::string, int64_t> confirmed;
  {
    absl::MutexLock lock(&mu);
    confirmed = acked;
  }
  ASSERT_GE(confirmed.size(), 1500u);

  RunResult check = RunCommand({"/usr/bin/sqlite3", dir.File("kaito.db"), "PRAGMA integrity_check;"});
  EXPECT_EQ(check.out, "ok\n") << check.err;

  auto restarted = StartServer(dir.path(), {"--no-controllers"});
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  channel = grpc::CreateChannel(restarted->address(), grpc::InsecureChannelCredentials());
  stub = v1::WorkspaceService::NewStub(channel);

  // Every acknowledged write is there, at the revision the client was told.
  std::set<std::string> listed;
  v1::ListWorkspacesRequest list;
  list.set_page_size(1000);
  do {
    grpc::ClientContext ctx;
    v1::ListWorkspacesResponse resp;
    ASSERT_TRUE(stub->ListWorkspaces(&ctx, list, &resp).ok());
    for (const auto& ws : resp.items()) listed.insert(ws.metadata().name());
    list.set_page_token(resp.next_page_token());
  } while (!list.page_token().empty());
  int missing = 0;
  for (const auto& [name, rv] : confirmed) {
    if (!listed.contains(name)) ++missing;
  }
  EXPECT_EQ(missing, 0) << "acknowledged writes lost in the crash";

  // A watch resumes from a revision taken before the crash and replays what followed.
  int64_t resume_from = 0;
  std::set<std::string> expected_after;
  {
    std::vector<int64_t> revs;
    for (const auto& [name, rv] : confirmed) revs.push_back(rv);
    std::sort(revs.begin(), revs.end());
    resume_from = revs[revs.size() - 200];
    for (const auto& [name, rv] : confirmed) {
      if (rv > resume_from) expected_after.insert(name);
    }
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchWorkspacesRequest watch;
  watch.set_resource_version(std::to_string(resume_from));
  auto reader = stub->WatchWorkspaces(&ctx, watch);
  v1::WorkspaceEvent event;
  int64_t last = resume_from;
  while (!expected_after.empty() && reader->Read(&event)) {
    ASSERT_EQ(event.type(), v1::ADDED);
    int64_t rv = 0;
    ASSERT_TRUE(absl::SimpleAtoi(event.resource_version(), &rv));
    ASSERT_GT(rv, last) << "events in revision order";
    last = rv;
    expected_after.erase(event.object().metadata().name());
  }
  EXPECT_TRUE(expected_after.empty()) << expected_after.size() << " events missing after resume";
  ctx.TryCancel();
  reader->Finish();

  // And the store keeps going: a new write lands after the recovered revision.
  grpc::ClientContext cctx;
  v1::CreateWorkspaceRequest req;
  *req.mutable_workspace() = Named("after-restart");
  v1::CreateWorkspaceResponse resp;
  ASSERT_TRUE(stub->CreateWorkspace(&cctx, req, &resp).ok());
  int64_t rv = 0;
  ASSERT_TRUE(absl::SimpleAtoi(resp.workspace().metadata().resource_version(), &rv));
  EXPECT_GT(rv, last);
}

}  // namespace
}  // namespace kaito::testing
