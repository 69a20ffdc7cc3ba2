// The daemons as processes with TLS and access control on, certificates made at run
// time: a kaito-agent joins with its node certificate (and only as its own node), and
// kaito-server creates nodes through kaito-provisioner over mutual TLS.
#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "common/tls.h"
#include "kaito/v1/agent.grpc.pb.h"
#include "kaito/v1/provisioner.grpc.pb.h"
#include "kaito/v1/workspace.grpc.pb.h"
#include "support/pki.h"
#include "support/process.h"
#include "support/temp_dir.h"

namespace kaito::testing {
namespace {

using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<TestPki>(dir_.path());
    server_cert_ = pki_->Server("server");
    std::ofstream(dir_.File("tokens.csv")) << "admin-token,ada,1\nviewer-token,vera,2\n";
    std::ofstream(dir_.File("policy.yaml"))
        << "bindings:\n  - role: admin\n    namespaces: [\"*\"]\n    users: [ada]\n"
        << "  - role: viewer\n    namespaces: [default]\n    users: [vera]\n";
  }

  // kaito-server with TLS, client certificates, tokens and a policy, plus `extra`.
  ServerProcess StartSecureServer(std::vector<std::string> extra = {}) {
    std::vector<std::string> flags = {
        "--tls-cert-file",   server_cert_.cert,        "--tls-key-file", server_cert_.key,
        "--client-ca-file",  pki_->ca_file(),          "--token-auth-file",
        dir_.File("tokens.csv"), "--authorization-policy-file", dir_.File("policy.yaml"),
        "--node-heartbeat-interval", "500ms"};
    flags.insert(flags.end(), extra.begin(), extra.end());
    auto server = StartServer(dir_.path(), flags, /*dev=*/false);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : ServerProcess();
  }

  std::shared_ptr<grpc::Channel> AdminChannel(const ServerProcess& server) {
    return grpc::CreateChannel(server.address(),
                               GrpcChannelCredentials({pki_->ca_file(), "", "", false}));
  }

  static void AsAdmin(grpc::ClientContext& ctx) {
    ctx.AddMetadata("authorization", "Bearer admin-token");
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  Daemon StartAgent(const ServerProcess& server, const std::string& node_name,
                    const CertificateFiles& cert, const std::string& log) {
    auto agent = Daemon::Start(
        {BinDir() + "/kaito-agent", "--server", server.address(), "--node-name", node_name,
         "--runtime", "simulated", "--gpu-probe", "fake", "--fake-gpus", "1xA100:80:8.0",
         "--metrics-listen", "", "--state-dir", dir_.File("state-" + node_name),
         "--certificate-authority", pki_->ca_file(), "--client-certificate", cert.cert,
         "--client-key", cert.key},
        log);
    EXPECT_TRUE(agent.ok()) << agent.status();
    return agent.ok() ? std::move(*agent) : Daemon();
  }

  TempDir dir_;
  std::unique_ptr<TestPki> pki_;
  CertificateFiles server_cert_;
};

TEST_F(TlsTest, AnAgentJoinsWithItsNodeCertificateAndOnlyAsItsOwnNode) {
  ServerProcess server = StartSecureServer();
  ASSERT_GT(server.port, 0);
  auto nodes = v1::NodeService::NewStub(AdminChannel(server));
  auto get_node = [&](const std::string& name) {
    grpc::ClientContext ctx;
    AsAdmin(ctx);
    v1::ObjectKey key;
    key.set_name(name);
    v1::Node node;
    return nodes->GetNode(&ctx, key, &node);
  };
  CertificateFiles n1 = pki_->Client("node-n1", "system:node:n1", {"system:nodes"});
  Daemon own = StartAgent(server, "n1", n1, dir_.File("agent-n1.log"));
  ASSERT_TRUE(WaitFor([&] { return get_node("n1").ok(); }, absl::Seconds(20)))
      << ReadFile(dir_.File("agent-n1.log"));

  // The same certificate claiming another node is refused, and that node never appears.
  Daemon impostor = StartAgent(server, "n2", n1, dir_.File("agent-n2.log"));
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFile(dir_.File("agent-n2.log")).find("own node") != std::string::npos; },
      absl::Seconds(20)))
      << ReadFile(dir_.File("agent-n2.log"));
  EXPECT_EQ(get_node("n2").error_code(), grpc::NOT_FOUND);

  // An agent without a certificate gets nowhere either.
  auto anonymous = Daemon::Start(
      {BinDir() + "/kaito-agent", "--server", server.address(), "--node-name", "n3",
       "--runtime", "simulated", "--gpu-probe", "fake", "--fake-gpus", "1xA100:80:8.0",
       "--metrics-listen", "", "--state-dir", dir_.File("state-n3"), "--certificate-authority",
       pki_->ca_file()},
      dir_.File("agent-n3.log"));
  ASSERT_TRUE(anonymous.ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        return ReadFile(dir_.File("agent-n3.log")).find("UNAUTHENTICATED") != std::string::npos ||
               ReadFile(dir_.File("agent-n3.log")).find("credentials are required") !=
                   std::string::npos;
      },
      absl::Seconds(20)))
      << ReadFile(dir_.File("agent-n3.log"));
  EXPECT_EQ(get_node("n3").error_code(), grpc::NOT_FOUND);
  anonymous->Stop();
  impostor.Stop();
  own.Stop();
  server.daemon.Stop();
}

TEST_F(TlsTest, TheServerCreatesNodesThroughTheProvisionerOverMutualTls) {
  const std::string port_file = dir_.File("prov.port");
  auto provisioner = Daemon::Start(
      {BinDir() + "/kaito-provisioner", "--provider", "simulated", "--listen", "127.0.0.1:0",
       "--port-file", port_file, "--metrics-listen", "", "--tls-cert-file", server_cert_.cert,
       "--tls-key-file", server_cert_.key, "--client-ca-file", pki_->ca_file(),
       "--simulated-create-delay", "100ms"},
      dir_.File("provisioner.log"));
  ASSERT_TRUE(provisioner.ok()) << provisioner.status();
  int prov_port = 0;
  ASSERT_TRUE(WaitForPortFile(port_file, &prov_port, absl::Seconds(20)))
      << ReadFile(dir_.File("provisioner.log"));
  const std::string prov_address = "127.0.0.1:" + std::to_string(prov_port);
  auto list_provisioned = [&](const TlsClientFiles& files, grpc::Status* status) {
    auto stub = v1::ProvisionerService::NewStub(
        grpc::CreateChannel(prov_address, GrpcChannelCredentials(files)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ListProvisionedNodesResponse out;
    *status = stub->ListNodes(&ctx, v1::ListProvisionedNodesRequest(), &out);
    return out.nodes_size();
  };
  // The provisioner requires a client certificate of the CA.
  grpc::Status status;
  list_provisioned({pki_->ca_file(), "", "", false}, &status);
  EXPECT_EQ(status.error_code(), grpc::UNAVAILABLE) << status.error_message();

  ServerProcess server = StartSecureServer(
      {"--provisioner", prov_address, "--provisioner-ca-file", pki_->ca_file(),
       "--claim-poll-interval", "100ms"});
  ASSERT_GT(server.port, 0);
  auto workspaces = v1::WorkspaceService::NewStub(AdminChannel(server));
  v1::CreateWorkspaceRequest req;
  auto* ws = req.mutable_workspace();
  ws->mutable_metadata()->set_name("phi");
  ws->mutable_resource()->set_instance_type("Standard_NC24ads_A100_v4");
  (*ws->mutable_resource()->mutable_label_selector()->mutable_match_labels())["apps"] = "phi";
  ws->mutable_inference()->mutable_preset()->set_name("phi-4");
  grpc::ClientContext ctx;
  AsAdmin(ctx);
  v1::CreateWorkspaceResponse out;
  grpc::Status created = workspaces->CreateWorkspace(&ctx, req, &out);
  ASSERT_TRUE(created.ok()) << created.error_message();
  // The node claim reaches the provisioner: it holds a machine for it.
  const TlsClientFiles server_identity{pki_->ca_file(), server_cert_.cert, server_cert_.key, false};
  ASSERT_TRUE(WaitFor(
      [&] {
        grpc::Status s;
        return list_provisioned(server_identity, &s) == 1 && s.ok();
      },
      absl::Seconds(20)))
      << ReadFile(dir_.File("provisioner.log"));
  server.daemon.Stop();
  provisioner->Stop();
}

TEST_F(TlsTest, KaitoctlTakesKubectlsCredentialFlagsAndEnvironment) {
  ServerProcess server = StartSecureServer();
  ASSERT_GT(server.port, 0);
  const std::string manifest = dir_.File("cm.yaml");
  std::ofstream(manifest) << "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n";
  auto kaitoctl = [&](std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {BinDir() + "/kaitoctl", "--server", server.address()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, "", env);
  };
  const std::string ca = pki_->ca_file();
  RunResult applied = kaitoctl(
      {"--certificate-authority", ca, "--token", "admin-token", "apply", "-f", manifest});
  EXPECT_EQ(applied.exit_code, 0) << applied.err;
  EXPECT_THAT(applied.out, HasSubstr("configmap/cfg created"));
  // The same from the environment, as a viewer: reading works, writing is refused.
  const std::vector<std::string> viewer = {"KAITO_CERTIFICATE_AUTHORITY=" + ca,
                                           "KAITO_TOKEN=viewer-token"};
  RunResult got = kaitoctl({"get", "configmaps"}, viewer);
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_THAT(got.out, HasSubstr("cfg"));
  RunResult denied = kaitoctl({"delete", "configmap", "cfg"}, viewer);
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("Error from server (Forbidden)"));
  EXPECT_THAT(denied.err, HasSubstr("cannot delete resource \"configmaps\""));
  // No token: Unauthorized; no CA: the TLS handshake fails; a bad flag pair: a local error.
  RunResult anonymous = kaitoctl({"--certificate-authority", ca, "get", "configmaps"});
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_THAT(anonymous.err, HasSubstr("Error from server (Unauthorized)"));
  RunResult plaintext = kaitoctl({"--token", "admin-token", "--timeout", "5", "get", "configmaps"});
  EXPECT_EQ(plaintext.exit_code, 1);
  RunResult half = kaitoctl({"--client-certificate", ca, "get", "configmaps"});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_THAT(half.err, HasSubstr("error: --client-certificate and --client-key go together"));
  // A client certificate instead of a token.
  CertificateFiles ada = pki_->Client("ada", "ada", {});
  RunResult by_cert = kaitoctl({"--certificate-authority", ca, "--client-certificate", ada.cert,
                                "--client-key", ada.key, "get", "configmaps"});
  EXPECT_EQ(by_cert.exit_code, 0) << by_cert.err;
  EXPECT_THAT(by_cert.out, HasSubstr("cfg"));
  server.daemon.Stop();
}

// kaito-kube-shim in front of a secured kaito-server: it serves HTTPS with its certificate,
// reaches the server over TLS, and forwards each caller's bearer token, so that the
// server's roles apply to kubectl users as they do to kaitoctl's.
TEST_F(TlsTest, KubeShimServesHttpsAndForwardsEachCallersToken) {
  ServerProcess server = StartSecureServer();
  ASSERT_GT(server.port, 0);
  const std::string port_file = dir_.File("shim.port");
  auto shim = Daemon::Start(
      {BinDir() + "/kaito-kube-shim", "--server", server.address(), "--listen", "127.0.0.1:0",
       "--port-file", port_file, "--metrics-listen", "", "--tls-cert-file", server_cert_.cert,
       "--tls-key-file", server_cert_.key, "--certificate-authority", pki_->ca_file()},
      dir_.File("shim.log"));
  ASSERT_TRUE(shim.ok()) << shim.status();
  int port = 0;
  ASSERT_TRUE(WaitForPortFile(port_file, &port, absl::Seconds(20)))
      << ReadFile(dir_.File("shim.log"));
  auto kubectl = [&](const std::string& token, std::vector<std::string> args) {
    const std::string config = dir_.File("kubeconfig-" + token);
    std::ofstream(config) << "apiVersion: v1\nkind: Config\nclusters:\n- name: shim\n"
                             "  cluster:\n    server: https://127.0.0.1:"
                          << port << "\n    certificate-authority: " << pki_->ca_file()
                          << "\ncontexts:\n- name: shim\n  context:\n    cluster: shim\n"
                             "    user: me\ncurrent-context: shim\nusers:\n- name: me\n  user:"
                             "\n    token: "
                          << token << "\n";
    std::string binary = Env("KUBECTL").empty() ? "/usr/bin/kubectl" : Env("KUBECTL");
    args.insert(args.begin(), {binary, "--kubeconfig", config, "--cache-dir",
                               dir_.File("kube-cache-" + token)});
    return RunCommand(args, "", {"HOME=" + dir_.path()});
  };
  const std::string manifest = dir_.File("cm.yaml");
  std::ofstream(manifest) << "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\n"
                             "data:\n  a: b\n";
  RunResult created = kubectl("admin-token", {"apply", "-f", manifest});
  EXPECT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(created.out, "configmap/from-kubectl created\n");
  RunResult read = kubectl("viewer-token", {"get", "configmap", "from-kubectl", "-o", "name"});
  EXPECT_EQ(read.exit_code, 0) << read.err;
  EXPECT_EQ(read.out, "configmap/from-kubectl\n");
  RunResult denied = kubectl("viewer-token", {"delete", "configmap", "from-kubectl"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_THAT(denied.err, HasSubstr("Error from server (Forbidden)"));
  // (kubectl with no credentials at all would prompt for a user name over HTTPS.)
  RunResult unknown = kubectl("no-such-token", {"get", "configmaps"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_THAT(unknown.err, HasSubstr("You must be logged in to the server (Unauthorized"));
  shim->Stop();
  server.daemon.Stop();
}

// As an aggregated API: only a caller with a certificate of the front-proxy CA gets in
// (kube-apiserver), and the shim calls kaito-server as itself, whatever the request says.
TEST_F(TlsTest, AggregatedKubeShimTakesOnlyTheFrontProxyAndActsAsItself) {
  ServerProcess server = StartSecureServer();
  ASSERT_GT(server.port, 0);
  CertificateFiles shim_identity = pki_->Client("shim-client", "ada", {});
  CertificateFiles front_proxy = pki_->Client("front-proxy", "front-proxy-client", {});
  const std::string port_file = dir_.File("shim.port");
  auto shim = Daemon::Start(
      {BinDir() + "/kaito-kube-shim", "--server", server.address(), "--listen", "127.0.0.1:0",
       "--port-file", port_file, "--metrics-listen", "", "--tls-cert-file", server_cert_.cert,
       "--tls-key-file", server_cert_.key, "--client-ca-file", pki_->ca_file(), "--aggregated",
       "--certificate-authority", pki_->ca_file(), "--client-certificate", shim_identity.cert,
       "--client-key", shim_identity.key},
      dir_.File("shim.log"));
  ASSERT_TRUE(shim.ok()) << shim.status();
  int port = 0;
  ASSERT_TRUE(WaitForPortFile(port_file, &port, absl::Seconds(20)))
      << ReadFile(dir_.File("shim.log"));
  const std::string url =
      "https://127.0.0.1:" + std::to_string(port) + "/api/v1/namespaces/default/configmaps";
  RunResult no_cert = RunCommand({"/usr/bin/curl", "-sS", "--cacert", pki_->ca_file(), url});
  EXPECT_NE(no_cert.exit_code, 0) << no_cert.out;
  // The caller's token is not what kaito-server sees: the shim's certificate (ada, admin) is.
  RunResult listed = RunCommand({"/usr/bin/curl", "-sS", "--cacert", pki_->ca_file(), "--cert",
                                 front_proxy.cert, "--key", front_proxy.key, "-H",
                                 "Authorization: Bearer no-such-token", url});
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("\"kind\":\"ConfigMapList\""));
  shim->Stop();
  server.daemon.Stop();
}

}  // namespace
}  // namespace kaito::testing
