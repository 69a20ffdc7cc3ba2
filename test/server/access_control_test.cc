// Access control end to end over TLS: a CA and certificates made at run time, bearer
// tokens, roles per namespace. The matrix: each role x each verb x its own and another
// namespace; nodes acting for themselves only; missing, unknown and revoked tokens;
// expired certificates, certificates of another CA, a client that trusts the wrong CA;
// and every unary method of the API refusing an anonymous caller.
#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/synchronization/notification.h"
#include "common/tls.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/config.grpc.pb.h"
#include "kaito/v1/presets.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "server/api_fixture.h"
#include "server/server_app.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::server {
namespace {

using ::testing::HasSubstr;
using testing::CertificateFiles;
using testing::TestPki;

void WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

constexpr char kPolicy[] = R"(bindings:
  - role: viewer
    namespaces: [team-a]
    users: [vera]
  - role: editor
    namespaces: [team-a]
    groups: [team-a-editors]
  - role: admin
    namespaces: ["*"]
    users: [ada]
)";

class AccessControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(dir_.path());
    server_cert_ = pki_->Server("server");
    tokens_ = dir_.File("tokens.csv");
    WriteText(tokens_,
              "viewer-token,vera,1001\n"
              "editor-token,eddie,1002,\"team-a-editors,staff\"\n"
              "admin-token,ada,1003\n"
              "nobody-token,nora,1004,\"staff\"\n");
    WriteText(dir_.File("policy.yaml"), kPolicy);
    ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.data_dir = dir_.File("data");
    options.controllers = false;
    options.tls_cert_file = server_cert_.cert;
    options.tls_key_file = server_cert_.key;
    options.client_ca_file = pki_->ca_file();
    options.token_auth_file = tokens_;
    options.authorization_policy_file = dir_.File("policy.yaml");
    auto app = ServerApp::Start(options);
    ASSERT_TRUE(app.ok()) << app.status();
    app_ = std::move(*app);
    channel_ = Channel({pki_->ca_file(), "", "", false});
    ws_ = v1::WorkspaceService::NewStub(channel_);
    cm_ = v1::ConfigService::NewStub(channel_);
    secrets_ = v1::SecretService::NewStub(channel_);
  }

  std::shared_ptr<grpc::Channel> Channel(const TlsClientFiles& files) {
    return grpc::CreateChannel("127.0.0.1:" + std::to_string(app_->grpc_port()),
                               GrpcChannelCredentials(files));
  }

  static void Authorize(grpc::ClientContext& ctx, const std::string& token) {
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  // One call of `verb` on workspaces in `ns` as the holder of `token`.
  grpc::Status Call(v1::WorkspaceService::Stub* stub, const std::string& token, Verb verb,
                    const std::string& ns) {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    v1::Workspace ws = MakeWorkspace("w-" + std::to_string(++counter_));
    ws.mutable_metadata()->set_namespace_(ns);
    switch (verb) {
      case Verb::kGet: {
        v1::GetWorkspaceRequest req;
        req.set_namespace_(ns);
        req.set_name("absent");
        v1::Workspace out;
        return stub->GetWorkspace(&ctx, req, &out);
      }
      case Verb::kList: {
        v1::ListWorkspacesRequest req;
        req.set_namespace_(ns);
        v1::ListWorkspacesResponse out;
        return stub->ListWorkspaces(&ctx, req, &out);
      }
      case Verb::kWatch: {
        v1::WatchWorkspacesRequest req;
        req.set_namespace_(ns);
        auto reader = stub->WatchWorkspaces(&ctx, req);
        v1::WorkspaceEvent event;
        if (reader->Read(&event)) {
          ctx.TryCancel();
          return grpc::Status::OK;  // It streams: allowed.
        }
        return reader->Finish();
      }
      case Verb::kCreate: {
        v1::CreateWorkspaceRequest req;
        *req.mutable_workspace() = ws;
        req.set_dry_run(true);
        v1::CreateWorkspaceResponse out;
        return stub->CreateWorkspace(&ctx, req, &out);
      }
      case Verb::kUpdate: {
        v1::UpdateWorkspaceRequest req;
        *req.mutable_workspace() = ws;
        v1::UpdateWorkspaceResponse out;
        return stub->UpdateWorkspace(&ctx, req, &out);
      }
      case Verb::kDelete: {
        v1::DeleteWorkspaceRequest req;
        req.set_namespace_(ns);
        req.set_name("absent");
        v1::DeleteWorkspaceResponse out;
        return stub->DeleteWorkspace(&ctx, req, &out);
      }
    }
    return grpc::Status::CANCELLED;
  }

  testing::TempDir dir_;
  std::unique_ptr<TestPki> pki_;
  CertificateFiles server_cert_;
  std::string tokens_;
  std::unique_ptr<ServerApp> app_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkspaceService::Stub> ws_;
  std::unique_ptr<v1::ConfigService::Stub> cm_;
  std::unique_ptr<v1::SecretService::Stub> secrets_;
  int counter_ = 0;
};

bool Refused(const grpc::Status& s) {
  return s.error_code() == grpc::PERMISSION_DENIED || s.error_code() == grpc::UNAUTHENTICATED;
}

TEST_F(AccessControlTest, EachRoleEachVerbOwnAndOtherNamespace) {
  const std::vector<Verb> verbs = {Verb::kGet,    Verb::kList,   Verb::kWatch,
                                   Verb::kCreate, Verb::kUpdate, Verb::kDelete};
  struct Who {
    const char* token;
    bool reads_own, writes_own, other;
  };
  const std::vector<Who> people = {
      {"viewer-token", true, false, false},
      {"editor-token", true, true, false},
      {"admin-token", true, true, true},
      {"nobody-token", false, false, false},  // Authenticated, bound to nothing.
  };
  for (const Who& who : people) {
    for (Verb verb : verbs) {
      const bool read = verb == Verb::kGet || verb == Verb::kList || verb == Verb::kWatch;
      for (const std::string ns : {"team-a", "team-b"}) {
        const bool allowed = ns == "team-a" ? (read ? who.reads_own : who.writes_own) : who.other;
        grpc::Status s = Call(ws_.get(), who.token, verb, ns);
        const std::string what =
            std::string(who.token) + " " + VerbName(verb) + " workspaces in " + ns + ": " +
            std::to_string(s.error_code()) + " " + s.error_message();
        if (allowed) {
          EXPECT_FALSE(Refused(s)) << what;
        } else {
          EXPECT_EQ(s.error_code(), grpc::PERMISSION_DENIED) << what;
          EXPECT_THAT(s.error_message(), HasSubstr(std::string("cannot ") + VerbName(verb) +
                                                   " resource \"workspaces\""))
              << what;
          EXPECT_THAT(s.error_message(), HasSubstr("\"" + ns + "\"")) << what;
        }
      }
    }
  }
  // Every namespace at once needs a binding to "*".
  EXPECT_EQ(Call(ws_.get(), "viewer-token", Verb::kList, "").error_code(),
            grpc::PERMISSION_DENIED);
  EXPECT_FALSE(Refused(Call(ws_.get(), "admin-token", Verb::kList, "")));
  // Editors write ConfigMaps and Secrets too; viewers do not.
  for (const auto& [token, ok] : std::vector<std::pair<std::string, bool>>{
           {"editor-token", true}, {"viewer-token", false}}) {
    grpc::ClientContext ctx;
    Authorize(ctx, token);
    v1::WriteSecretRequest req;
    req.mutable_secret()->mutable_metadata()->set_name("s-" + token);
    req.mutable_secret()->mutable_metadata()->set_namespace_("team-a");
    (*req.mutable_secret()->mutable_data())["k"] = "v";
    v1::Secret out;
    grpc::Status s = secrets_->CreateSecret(&ctx, req, &out);
    EXPECT_EQ(s.ok(), ok) << token << ": " << s.error_message();
  }
}

TEST_F(AccessControlTest, MissingUnknownAndRevokedTokensAreUnauthenticated) {
  grpc::Status none = Call(ws_.get(), "", Verb::kList, "team-a");
  EXPECT_EQ(none.error_code(), grpc::UNAUTHENTICATED);
  EXPECT_THAT(none.error_message(), HasSubstr("credentials are required"));
  EXPECT_EQ(Call(ws_.get(), "guessed-token", Verb::kList, "team-a").error_code(),
            grpc::UNAUTHENTICATED);
  ASSERT_FALSE(Refused(Call(ws_.get(), "viewer-token", Verb::kList, "team-a")));
  // The token file is reloaded when it changes: a token taken out stops working.
  WriteText(tokens_, "admin-token,ada,1003\n");
  ASSERT_TRUE(testing::WaitFor(
      [&] {
        return Call(ws_.get(), "viewer-token", Verb::kList, "team-a").error_code() ==
               grpc::UNAUTHENTICATED;
      },
      absl::Seconds(10)));
  EXPECT_FALSE(Refused(Call(ws_.get(), "admin-token", Verb::kList, "team-a")));
}

TEST_F(AccessControlTest, ClientCertificatesIdentifyUserAndGroups) {
  // CN = user, O = groups: this one is an editor of team-a by its group.
  CertificateFiles alice = pki_->Client("alice", "alice", {"team-a-editors"});
  auto stub = v1::WorkspaceService::NewStub(Channel({pki_->ca_file(), alice.cert, alice.key}));
  EXPECT_FALSE(Refused(Call(stub.get(), "", Verb::kCreate, "team-a")));
  grpc::Status other = Call(stub.get(), "", Verb::kCreate, "team-b");
  EXPECT_EQ(other.error_code(), grpc::PERMISSION_DENIED);
  EXPECT_THAT(other.error_message(), HasSubstr("User \"alice\""));
}

TEST_F(AccessControlTest, ExpiredForeignAndUntrustedCertificatesNeverConnect) {
  CertificateFiles expired = pki_->Client("late", "ada", {}, /*expired=*/true);
  TestPki evil(dir_.path(), "evil");
  CertificateFiles forged = evil.Client("forged", "ada", {});
  for (const auto& [what, files] : std::vector<std::pair<std::string, TlsClientFiles>>{
           {"an expired certificate", {pki_->ca_file(), expired.cert, expired.key}},
           {"a certificate of another CA", {pki_->ca_file(), forged.cert, forged.key}},
           {"a client trusting another CA", {evil.ca_file(), "", ""}}}) {
    auto stub = v1::WorkspaceService::NewStub(Channel(files));
    grpc::Status s = Call(stub.get(), "admin-token", Verb::kList, "team-a");
    EXPECT_EQ(s.error_code(), grpc::UNAVAILABLE) << what << ": " << s.error_message();
  }
  // And plaintext to a TLS port gets nowhere.
  auto plain = v1::WorkspaceService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(app_->grpc_port()), grpc::InsecureChannelCredentials()));
  EXPECT_EQ(Call(plain.get(), "admin-token", Verb::kList, "team-a").error_code(),
            grpc::UNAVAILABLE);
}

TEST_F(AccessControlTest, NodesActOnlyForThemselves) {
  CertificateFiles n1 = pki_->Client("node-n1", "system:node:n1", {"system:nodes"});
  auto channel = Channel({pki_->ca_file(), n1.cert, n1.key});
  auto nodes = v1::NodeService::NewStub(channel);
  auto hello = [&](const std::string& name) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = nodes->Connect(&ctx);
    v1::AgentMessage m;
    m.mutable_hello()->set_node_name(name);
    stream->Write(m);
    v1::ServerMessage reply;
    const bool welcomed = stream->Read(&reply) && reply.has_welcome();
    if (welcomed) ctx.TryCancel();  // Else the server ended it: keep its status.
    grpc::Status s = stream->Finish();
    return std::make_pair(welcomed, s);
  };
  EXPECT_TRUE(hello("n1").first) << "its own node";
  auto [welcomed, status] = hello("n2");
  EXPECT_FALSE(welcomed);
  EXPECT_EQ(status.error_code(), grpc::PERMISSION_DENIED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("may act only for its own node"));

  // A node is no API user: it cannot list workspaces or read nodes.
  auto ws = v1::WorkspaceService::NewStub(channel);
  EXPECT_EQ(Call(ws.get(), "", Verb::kList, "team-a").error_code(), grpc::PERMISSION_DENIED);
  {
    grpc::ClientContext ctx;
    v1::ListNodesResponse out;
    EXPECT_EQ(nodes->ListNodes(&ctx, v1::ListRequest(), &out).error_code(),
              grpc::PERMISSION_DENIED);
  }
  // It reads a Secret only when a workload placed on it refers to it.
  auto secrets = v1::SecretService::NewStub(channel);
  auto get_secret = [&](const std::string& name) {
    grpc::ClientContext ctx;
    v1::ObjectKey key;
    key.set_namespace_("team-a");
    key.set_name(name);
    v1::Secret out;
    return secrets->GetSecret(&ctx, key, &out);
  };
  EXPECT_EQ(get_secret("hf-token").error_code(), grpc::PERMISSION_DENIED);
  v1::Workload w;
  w.mutable_metadata()->set_name("ws-0");
  w.mutable_metadata()->set_namespace_("team-a");
  w.mutable_spec()->set_node_name("n1");
  auto* env = w.mutable_spec()->add_containers()->add_env();
  env->set_name("HF_TOKEN");
  env->mutable_secret_key_ref()->set_name("hf-token");
  env->mutable_secret_key_ref()->set_key("HF_TOKEN");
  absl::Notification created;
  app_->workloads()->Create(w, false, [&](absl::StatusOr<WriteResult<v1::Workload>> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    created.Notify();
  });
  ASSERT_TRUE(created.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(get_secret("hf-token").error_code(), grpc::NOT_FOUND) << "allowed; not created yet";
  EXPECT_EQ(get_secret("other-secret").error_code(), grpc::PERMISSION_DENIED);
}

// Every unary method of every API service refuses a caller without credentials: a
// handler that forgot its check fails here.
TEST_F(AccessControlTest, EveryMethodRefusesAnonymousCallers) {
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  int checked = 0;
  for (const char* service : {"kaito.v1.WorkspaceService", "kaito.v1.ConfigService",
                              "kaito.v1.SecretService", "kaito.v1.SystemService",
                              "kaito.v1.PresetService", "kaito.v1.NodeService"}) {
    const auto* s = pool->FindServiceByName(service);
    ASSERT_NE(s, nullptr) << service;
    for (int i = 0; i < s->method_count(); ++i) {
      const auto* m = s->method(i);
      if (m->client_streaming() || m->server_streaming()) continue;
      grpc::Status status =
          RawUnaryCall(channel_, "/" + std::string(service) + "/" + m->name(), "");
      EXPECT_EQ(status.error_code(), grpc::UNAUTHENTICATED)
          << m->full_name() << ": " << status.error_message();
      ++checked;
    }
  }
  EXPECT_GE(checked, 25);
  // The streams too.
  EXPECT_EQ(Call(ws_.get(), "", Verb::kWatch, "team-a").error_code(), grpc::UNAUTHENTICATED);
  auto nodes = v1::NodeService::NewStub(channel_);
  grpc::ClientContext ctx;
  auto stream = nodes->Connect(&ctx);
  v1::ServerMessage reply;
  EXPECT_FALSE(stream->Read(&reply));
  EXPECT_EQ(stream->Finish().error_code(), grpc::UNAUTHENTICATED);
}

TEST(AccessControlConfigTest, BadFilesRefuseToStart) {
  testing::TempDir dir;
  TestPki pki(dir.path());
  CertificateFiles cert = pki.Server("server");
  auto start = [&](std::function<void(ServerOptions&)> change) {
    ServerOptions o;
    o.listen = "127.0.0.1:0";
    o.metrics_listen = "";
    o.data_dir = dir.File("data");
    o.controllers = false;
    change(o);
    return ServerApp::Start(o).status();
  };
  WriteText(dir.File("bad-policy.yaml"), "bindings:\n  - role: owner\n    users: [x]\n");
  WriteText(dir.File("tokens.csv"), "t,u,1\n");
  absl::Status s = start([&](ServerOptions& o) {
    o.token_auth_file = dir.File("tokens.csv");
    o.authorization_policy_file = dir.File("bad-policy.yaml");
  });
  EXPECT_THAT(std::string(s.message()), HasSubstr("bindings[0].role: Unsupported value: \"owner\""));
  EXPECT_THAT(std::string(s.message()), HasSubstr("bindings[0].namespaces: Required value"));
  s = start([&](ServerOptions& o) { o.authorization_policy_file = dir.File("bad-policy.yaml"); });
  EXPECT_THAT(std::string(s.message()), HasSubstr("needs a way to authenticate"));
  WriteText(dir.File("bad-tokens.csv"), "only-a-token\n");
  s = start([&](ServerOptions& o) { o.token_auth_file = dir.File("bad-tokens.csv"); });
  EXPECT_THAT(std::string(s.message()), HasSubstr("line 1: expected token,user,uid"));
  s = start([&](ServerOptions& o) { o.tls_cert_file = cert.cert; });
  EXPECT_THAT(std::string(s.message()), HasSubstr("--tls-cert-file and --tls-key-file go together"));
  s = start([&](ServerOptions& o) {
    o.tls_cert_file = cert.key;  // Not a certificate.
    o.tls_key_file = cert.key;
  });
  EXPECT_THAT(std::string(s.message()), HasSubstr("not a PEM file"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("data"))) << "nothing was touched";
}

TEST(TokenFileTest, ParsesKubeApiserversFormat) {
  auto tokens = ParseTokenFile("a,alice,1,\"g1,g2\"\n\n# comment\nb,bob,2\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 2u);
  bool found = false;
  for (const auto& [digest, t] : *tokens) {
    EXPECT_EQ(digest.size(), 32u) << "keyed by SHA-256, not the token";
    if (t.user == "alice") {
      found = true;
      EXPECT_EQ(t.uid, "1");
      EXPECT_THAT(t.groups, ::testing::ElementsAre("g1", "g2"));
    }
  }
  EXPECT_TRUE(found);
  EXPECT_FALSE(ParseTokenFile("a,alice,1\na,bob,2\n").ok()) << "a repeated token";
  EXPECT_FALSE(ParseTokenFile("a,alice,1,\"unterminated\n").ok());
  EXPECT_FALSE(ParseTokenFile(",alice,1\n").ok());
}

}  // namespace
}  // namespace kaito::server
