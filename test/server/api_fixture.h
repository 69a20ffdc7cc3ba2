// The fixture of the API tests: an in-process kaito-server (SQLite store, no
// controllers) on a loopback port, stubs for its services, and helpers. With
// KAITO_TEST_STORE=etcd in the environment the server stores in a real etcd that the
// fixture starts (ctest runs the API tests both ways: `etcd.` names the second run).
#pragma once

#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/presets.grpc.pb.h"
#include "kaito/v1/system.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "server/server_app.h"
#include "support/etcd.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::server {


inline v1::Workspace MakeWorkspace(const std::string& name, const std::string& app = "phi") {
  v1::Workspace ws;
  ws.mutable_metadata()->set_name(name);
  (*ws.mutable_metadata()->mutable_labels())["app"] = app;
  ws.mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  (*ws.mutable_resource()->mutable_label_selector()->mutable_match_labels())["apps"] = app;
  ws.mutable_inference()->mutable_preset()->set_name("phi-4");
  return ws;
}

inline void AddAdapter(v1::Workspace& ws, const std::string& name) {
  auto* adapter = ws.mutable_inference()->add_adapters();
  adapter->mutable_source()->set_name(name);
  adapter->mutable_source()->set_image("example.com/adapters/" + name + ":1");
}

// Turns `ws` into a LoRA tuning workspace with an image destination; the caller sets the input.
inline v1::TuningSpec* MakeTuning(v1::Workspace& ws) {
  ws.clear_inference();
  auto* t = ws.mutable_tuning();
  t->mutable_preset()->set_name("phi-4");
  t->set_method("lora");
  t->mutable_output()->set_image("e.com/o:1");
  t->mutable_output()->set_image_push_secret("s");
  return t;
}

class ApiTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start(size_t watch_history = 10000, size_t watch_backlog = kMaxWatchBacklog) {
    ServerOptions options;
    options.watch_backlog = watch_backlog;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.data_dir = dir_.path();
    if (testing::Env("KAITO_TEST_STORE") == "etcd") {
      if (!etcd_) {
        auto etcd = testing::LocalEtcd::Start(dir_.path());
        ASSERT_TRUE(etcd.ok()) << etcd.status();
        etcd_ = *std::move(etcd);
      }
      options.store = etcd_->store_url();  // A restart finds its data again.
    }
    options.watch_history = watch_history;
    options.dev = dev_;
    // These tests are about the API's semantics; reconciliation has its own tests.
    options.controllers = false;
    auto app = ServerApp::Start(options);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(app_->grpc_port()),
                                   grpc::InsecureChannelCredentials());
    ws_ = v1::WorkspaceService::NewStub(channel_);
    cm_ = v1::ConfigService::NewStub(channel_);
    secrets_ = v1::SecretService::NewStub(channel_);
    system_ = v1::SystemService::NewStub(channel_);
  }

  void Restart(size_t watch_history = 10000, size_t watch_backlog = kMaxWatchBacklog) {
    ws_.reset();
    cm_.reset();
    secrets_.reset();
    channel_.reset();
    app_.reset();
    Start(watch_history, watch_backlog);
  }

  grpc::Status Create(const v1::Workspace& ws, v1::CreateWorkspaceResponse* out,
                      bool dry_run = false) {
    grpc::ClientContext ctx;
    v1::CreateWorkspaceRequest req;
    *req.mutable_workspace() = ws;
    req.set_dry_run(dry_run);
    return ws_->CreateWorkspace(&ctx, req, out);
  }

  v1::Workspace MustCreate(const v1::Workspace& ws) {
    v1::CreateWorkspaceResponse out;
    grpc::Status s = Create(ws, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out.workspace();
  }

  grpc::Status Get(const std::string& name, v1::Workspace* out, const std::string& ns = "") {
    grpc::ClientContext ctx;
    v1::GetWorkspaceRequest req;
    req.set_namespace_(ns);
    req.set_name(name);
    return ws_->GetWorkspace(&ctx, req, out);
  }

  grpc::Status Update(const v1::Workspace& ws, v1::UpdateWorkspaceResponse* out) {
    grpc::ClientContext ctx;
    v1::UpdateWorkspaceRequest req;
    *req.mutable_workspace() = ws;
    return ws_->UpdateWorkspace(&ctx, req, out);
  }

  grpc::Status Delete(const std::string& name, v1::DeleteWorkspaceResponse* out) {
    grpc::ClientContext ctx;
    v1::DeleteWorkspaceRequest req;
    req.set_name(name);
    return ws_->DeleteWorkspace(&ctx, req, out);
  }

  v1::ListWorkspacesResponse List(const std::string& ns, const std::string& selector = "",
                                  int page_size = 0, const std::string& token = "",
                                  grpc::Status* status = nullptr) {
    grpc::ClientContext ctx;
    v1::ListWorkspacesRequest req;
    req.set_namespace_(ns);
    req.set_label_selector(selector);
    req.set_page_size(page_size);
    req.set_page_token(token);
    v1::ListWorkspacesResponse out;
    grpc::Status s = ws_->ListWorkspaces(&ctx, req, &out);
    if (status) *status = s;
    return out;
  }

  int64_t Revision() { return app_->store()->CurrentRevision(); }

  // Dev mode turns node auto-provisioning on: workspaces name an instance type.
  bool dev_ = true;
  testing::TempDir dir_;
  std::unique_ptr<testing::LocalEtcd> etcd_;  // Only with KAITO_TEST_STORE=etcd.
  std::unique_ptr<ServerApp> app_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> ws_;
  std::unique_ptr<v1::ConfigService::Stub> cm_;
  std::unique_ptr<v1::SecretService::Stub> secrets_;
  std::unique_ptr<v1::SystemService::Stub> system_;
};

// Reads a watch stream on its own thread.
class WatchReader {
 public:
  WatchReader(v1::WorkspaceService::Stub* stub, const v1::WatchWorkspacesRequest& req) {
    reader_ = stub->WatchWorkspaces(&ctx_, req);
    thread_ = std::thread([this] {
      v1::WorkspaceEvent e;
      while (reader_->Read(&e)) {
        absl::MutexLock lock(&mu_);
        events_.push_back(e);
      }
      absl::MutexLock lock(&mu_);
      status_ = reader_->Finish();
      done_ = true;
    });
  }
  ~WatchReader() {
    ctx_.TryCancel();
    thread_.join();
  }
  bool WaitForEvents(size_t n) {
    return testing::WaitFor(
        [&] {
          absl::MutexLock lock(&mu_);
          return events_.size() >= n || done_;
        },
        absl::Seconds(10)) &&
           Events().size() >= n;
  }
  bool WaitDone() {
    return testing::WaitFor(
        [&] {
          absl::MutexLock lock(&mu_);
          return done_;
        },
        absl::Seconds(10));
  }
  std::vector<v1::WorkspaceEvent> Events() {
    absl::MutexLock lock(&mu_);
    return events_;
  }
  grpc::Status status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WorkspaceEvent>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<v1::WorkspaceEvent> events_;
  grpc::Status status_;
  bool done_ = false;
};

// Sends `payload` as the raw request of unary `method` ("/kaito.v1.X/Y"), bypassing the
// client library's encoding, and returns the status.
inline grpc::Status RawUnaryCall(const std::shared_ptr<grpc::Channel>& channel,
                                 const std::string& method, const std::string& payload,
                                 grpc::ByteBuffer* reply = nullptr) {
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(payload);
  grpc::ByteBuffer send(&slice, 1), recv;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, method, grpc::StubOptions(), &send, reply ? reply : &recv,
                    [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = std::move(s);
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });  // The deadline above bounds the wait.
  return status;
}

}  // namespace kaito::server
