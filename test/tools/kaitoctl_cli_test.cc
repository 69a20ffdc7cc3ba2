// kaitoctl against a fake server in the test's process: what it sends, what it refuses to
// send, and how long it waits for a server that does not answer. The fake answers on
// 127.0.0.1 at a port the kernel picks; kaitoctl runs as a child process.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/limits.h"
#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::ctl {
namespace {

using ::kaito::testing::BinDir;
using ::kaito::testing::RunCommand;
using ::kaito::testing::RunResult;
using ::testing::HasSubstr;

// Unary calls that a fake holds unanswered until `ReleaseAll`, as a server that has
// stopped answering would. Thread-safe.
class ParkedCalls {
 public:
  grpc::ServerUnaryReactor* Park(grpc::CallbackServerContext* ctx) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    absl::MutexLock lock(&mu_);
    parked_.push_back(reactor);
    return reactor;
  }
  // Finishes every parked call (CANCELLED), so that the server can shut down.
  void ReleaseAll() {
    std::vector<grpc::ServerUnaryReactor*> parked;
    {
      absl::MutexLock lock(&mu_);
      parked.swap(parked_);
    }
    for (auto* r : parked) r->Finish(grpc::Status(grpc::CANCELLED, "test over"));
  }

 private:
  absl::Mutex mu_;
  std::vector<grpc::ServerUnaryReactor*> parked_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

// A watch stream that ends at once with `status`.
class EndedStream : public grpc::ServerWriteReactor<v1::WorkspaceEvent> {
 public:
  explicit EndedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

// A watch stream that sends one MODIFIED event with `object`, then ends.
class OneEventStream : public grpc::ServerWriteReactor<v1::WorkspaceEvent> {
 public:
  explicit OneEventStream(const v1::Workspace& object) {
    event_.set_type(v1::MODIFIED);
    *event_.mutable_object() = object;
    event_.set_resource_version("8");
    StartWrite(&event_);
  }
  void OnWriteDone(bool) override { Finish(grpc::Status::OK); }
  void OnDone() override { delete this; }

 private:
  v1::WorkspaceEvent event_;
};

// A workspace "w" with WorkspaceReady `status`.
v1::Workspace WorkspaceWithReady(const std::string& status) {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name("w");
  ws.mutable_metadata()->set_namespace_("default");
  ws.mutable_metadata()->set_resource_version("7");
  auto* c = ws.mutable_status()->add_conditions();
  c->set_type("WorkspaceReady");
  c->set_status(status);
  return ws;
}

// Deletes leave the workspace waiting for its finalizers, watches end at once
// (UNAVAILABLE) and Gets are answered or held, as the test sets before kaitoctl runs.
class FakeWorkspaceService : public v1::WorkspaceService::CallbackService {
 public:
  explicit FakeWorkspaceService(ParkedCalls& parked) : parked_(parked) {}

  std::atomic<bool> hold_deletes{false};
  std::atomic<bool> hold_gets{false};
  // Gets answer "w" not ready yet, and a watch turns it ready.
  std::atomic<bool> becomes_ready{false};
  std::atomic<int> calls{0};
  std::atomic<int> gets{0};
  std::atomic<int> watches{0};

  grpc::ServerUnaryReactor* DeleteWorkspace(grpc::CallbackServerContext* ctx,
                                            const v1::DeleteWorkspaceRequest* req,
                                            v1::DeleteWorkspaceResponse* resp) override {
    ++calls;
    if (hold_deletes) return parked_.Park(ctx);
    resp->set_deleted(false);
    resp->mutable_workspace()->mutable_metadata()->set_name(req->name());
    resp->mutable_workspace()->mutable_metadata()->set_resource_version("7");
    resp->mutable_workspace()->mutable_metadata()->add_finalizers("example.com/hold");
    return Answer(ctx, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* GetWorkspace(grpc::CallbackServerContext* ctx,
                                         const v1::GetWorkspaceRequest* req,
                                         v1::Workspace* ws) override {
    ++calls;
    ++gets;
    if (hold_gets) return parked_.Park(ctx);
    if (becomes_ready) {
      *ws = WorkspaceWithReady("False");
      return Answer(ctx, grpc::Status::OK);
    }
    return Answer(ctx,
                  grpc::Status(grpc::NOT_FOUND, "workspaces \"" + req->name() + "\" not found"));
  }
  grpc::ServerUnaryReactor* CreateWorkspace(grpc::CallbackServerContext* ctx,
                                            const v1::CreateWorkspaceRequest* req,
                                            v1::CreateWorkspaceResponse* resp) override {
    ++calls;
    *resp->mutable_workspace() = req->workspace();
    return Answer(ctx, grpc::Status::OK);
  }
  grpc::ServerWriteReactor<v1::WorkspaceEvent>* WatchWorkspaces(
      grpc::CallbackServerContext* ctx, const v1::WatchWorkspacesRequest* req) override {
    ++calls;
    ++watches;
    if (becomes_ready) return new OneEventStream(WorkspaceWithReady("True"));
    return new EndedStream(grpc::Status(grpc::UNAVAILABLE, "watch closed"));
  }

 private:
  ParkedCalls& parked_;
};

// ConfigMaps that do not exist yet: Get is NOT_FOUND, Create succeeds; every call counted.
class FakeConfigService : public v1::ConfigService::CallbackService {
 public:
  std::atomic<int> calls{0};
  std::atomic<int> creates{0};
  std::atomic<bool> last_create_dry_run{false};

  grpc::ServerUnaryReactor* GetConfigMap(grpc::CallbackServerContext* ctx, const v1::ObjectKey* key,
                                         v1::ConfigMap*) override {
    ++calls;
    return Answer(ctx,
                  grpc::Status(grpc::NOT_FOUND, "configmaps \"" + key->name() + "\" not found"));
  }
  grpc::ServerUnaryReactor* CreateConfigMap(grpc::CallbackServerContext* ctx,
                                            const v1::WriteConfigMapRequest* req,
                                            v1::ConfigMap* out) override {
    ++calls;
    ++creates;
    last_create_dry_run = req->dry_run();
    *out = req->config_map();
    return Answer(ctx, grpc::Status::OK);
  }
};

class KaitoctlCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    // Larger than the client's bound, so that only kaitoctl's own check can refuse.
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.RegisterService(&workspaces_);
    builder.RegisterService(&configs_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    parked_.ReleaseAll();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  // kaitoctl with `args` against the fake; killed if it runs past `limit`.
  RunResult Ctl(std::vector<std::string> args, const std::string& stdin_data = "",
                absl::Duration limit = absl::Seconds(60)) {
    args.insert(args.begin(),
                {BinDir() + "/kaitoctl", "--server", "127.0.0.1:" + std::to_string(port_)});
    return RunCommand(args, stdin_data, {}, limit);
  }

  ParkedCalls parked_;
  FakeWorkspaceService workspaces_{parked_};
  FakeConfigService configs_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// A ConfigMap whose request is larger than the server accepts, though every value is small:
// `entries` keys of 7 bytes with 1-byte values.
std::string ConfigMapManifest(const std::string& name, int entries) {
  std::string yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n";
  char key[16];
  for (int i = 0; i < entries; ++i) {
    std::snprintf(key, sizeof key, "k%06d", i);
    yaml += std::string("  ") + key + ": v\n";
  }
  return yaml;
}

TEST_F(KaitoctlCliTest, RefusesARequestLargerThanTheServerAcceptsBeforeSendingIt) {
  // 140,000 entries: 1.8 MB encoded, more than kMaxRequestBytes, though the decoder's
  // lower bound of the encoding (1.4 MB) lets the document through to kaitoctl's check.
  RunResult r = Ctl({"apply", "-f", "-"}, ConfigMapManifest("big", 140000));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(configs_.calls.load(), 0) << "nothing is sent";
  EXPECT_THAT(r.err, HasSubstr("configmap/big: the request would be "));
  EXPECT_THAT(r.err, HasSubstr("more than the server accepts (" + std::to_string(kMaxRequestBytes) +
                               " bytes"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

  // A smaller one of the same shape is sent.
  r = Ctl({"apply", "-f", "-"}, ConfigMapManifest("small", 1000));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configmap/small created\n");
  EXPECT_EQ(configs_.calls.load(), 2);  // Get, then Create.
}

TEST_F(KaitoctlCliTest, DocumentErrorsNameTheirFile) {
  kaito::testing::TempDir dir;
  const std::string file = dir.File("dup.yaml");
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n  name: two\n", f);
    std::fclose(f);
  }
  RunResult r = Ctl({"apply", "-f", file});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "error: " + file +
                       ": document 1 (ConfigMap \"one\") is invalid: metadata.name: duplicate key "
                       "\"name\" at line 5, already set at line 4\n");
  EXPECT_EQ(configs_.calls.load(), 0);
}

// `delete --wait --timeout 1s` against a server that leaves one call unanswered: it fails
// at its own timeout naming `reason`, and the per-call --timeout (30s) does not stretch it.
void ExpectDeleteWaitGivesUp(const std::function<RunResult()>& run, const std::string& reason) {
  const absl::Time start = absl::Now();
  RunResult r = run();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err,
              HasSubstr("timed out after 1s waiting for workspace \"w\" to be deleted: " + reason));
  EXPECT_LT(took, absl::Seconds(10)) << took;
}

TEST_F(KaitoctlCliTest, DeleteWaitGivesUpAtItsTimeoutWhenTheDeleteIsNotAnswered) {
  workspaces_.hold_deletes = true;
  ExpectDeleteWaitGivesUp(
      [&] {
        return Ctl({"delete", "workspace", "w", "--wait", "--timeout", "1s"}, "",
                   absl::Seconds(20));
      },
      "the server did not answer the delete");
}

TEST_F(KaitoctlCliTest, DeleteWaitGivesUpAtItsTimeoutWhenAGetIsNotAnswered) {
  // The delete is answered (finalizers pending), the watch ends at once, and the Get that
  // follows is never answered.
  workspaces_.hold_gets = true;
  ExpectDeleteWaitGivesUp(
      [&] {
        return Ctl({"delete", "workspace", "w", "--wait", "--timeout", "1s"}, "",
                   absl::Seconds(20));
      },
      "the server did not answer");
}

TEST_F(KaitoctlCliTest, DeleteWaitEndsWhenTheWorkspaceIsGone) {
  // Watch closed, then the Get says NOT_FOUND: deleted.
  RunResult r = Ctl({"delete", "workspace", "w", "--wait", "--timeout", "30s"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "workspace.kaito.sh \"w\" deleted\n");
}

TEST_F(KaitoctlCliTest, ClientDryRunOnlyReadsAndABareDryRunIsTheServers) {
  RunResult r = Ctl({"apply", "--dry-run=client", "-f", "-"}, ConfigMapManifest("cfg", 1));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configmap/cfg created (dry run)\n");
  EXPECT_EQ(configs_.calls.load(), 1) << "one Get, no write";
  EXPECT_EQ(configs_.creates.load(), 0);

  r = Ctl({"apply", "--dry-run", "-f", "-"}, ConfigMapManifest("cfg", 1));
  EXPECT_EQ(r.out, "configmap/cfg created (server dry run)\n") << r.err;
  EXPECT_EQ(configs_.creates.load(), 1);
  EXPECT_TRUE(configs_.last_create_dry_run.load());
}

TEST_F(KaitoctlCliTest, WaitUsesTheWatchNotPolling) {
  workspaces_.becomes_ready = true;
  RunResult r = Ctl({"wait", "--for=condition=WorkspaceReady", "ws/w", "--timeout=30s"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "workspace.kaito.sh/w condition met\n");
  EXPECT_EQ(workspaces_.gets.load(), 1) << "one Get to start from";
  EXPECT_EQ(workspaces_.watches.load(), 1) << "then the watch's event";
}

TEST_F(KaitoctlCliTest, RequestTimeoutBoundsEachCall) {
  workspaces_.hold_gets = true;
  for (const char* timeout : {"1s", "1"}) {
    const absl::Time start = absl::Now();
    RunResult r = Ctl({"get", "ws", "w", "--request-timeout", timeout}, "", absl::Seconds(20));
    EXPECT_EQ(r.exit_code, 1) << timeout;
    EXPECT_EQ(r.err, "error: the server at 127.0.0.1:" + std::to_string(port_) +
                         " did not answer within 1s (--request-timeout)\n");
    EXPECT_LT(absl::Now() - start, absl::Seconds(10)) << timeout;
  }
  // The older --timeout (before the verb) still sets it.
  RunResult r = RunCommand({BinDir() + "/kaitoctl", "--timeout", "1", "--server",
                            "127.0.0.1:" + std::to_string(port_), "get", "ws", "w"},
                           "", {}, absl::Seconds(20));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("did not answer within 1s"));
}

}  // namespace
}  // namespace kaito::ctl
